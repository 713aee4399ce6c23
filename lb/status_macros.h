// The one early-return helper for absl::Status, shared by every component.
#pragma once

#include "absl/status/status.h"

// Returns the status of `expr` from the enclosing function when it is not OK.
#define ATL_RETURN_IF_ERROR(expr)             \
  do {                                        \
    if (absl::Status s_ = (expr); !s_.ok()) { \
      return s_;                              \
    }                                         \
  } while (false)
