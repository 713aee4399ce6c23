// The early-return helpers for absl::Status and absl::StatusOr, shared by
// every component.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns the status of `expr` from the enclosing function when it is not OK.
#define ATL_RETURN_IF_ERROR(expr)             \
  do {                                        \
    if (absl::Status s_ = (expr); !s_.ok()) { \
      return s_;                              \
    }                                         \
  } while (false)

// `ATL_ASSIGN_OR_RETURN(T x, StatusOrExpr);` declares `x` from the value of a
// StatusOr, or returns its status from the enclosing function.
#define ATL_ASSIGN_OR_RETURN(lhs, expr) \
  ATL_ASSIGN_OR_RETURN_IMPL_(ATL_STATUS_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ATL_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return statusor.status();         \
  lhs = *std::move(statusor)
#define ATL_STATUS_CONCAT_(a, b) ATL_STATUS_CONCAT_INNER_(a, b)
#define ATL_STATUS_CONCAT_INNER_(a, b) a##b
