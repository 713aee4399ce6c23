#include "atollctl/names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace atl::ctl {

const KindInfo* FindKind(absl::string_view cli_name) {
  for (const auto& info : kKinds) {
    if (absl::EqualsIgnoreCase(cli_name, info.singular) ||
        absl::EqualsIgnoreCase(cli_name, info.plural) ||
        absl::EqualsIgnoreCase(cli_name, info.manifest_kind) ||
        (!info.short_name.empty() && absl::EqualsIgnoreCase(cli_name, info.short_name))) {
      return &info;
    }
  }
  return nullptr;
}

const KindInfo* FindKind(api::Kind kind) {
  for (const auto& info : kKinds) {
    if (info.kind == kind) return &info;
  }
  return nullptr;
}

const KindInfo* FindKind(api::Resource::KindCase kind_case) {
  for (const auto& info : kKinds) {
    if (info.kind_case == kind_case) return &info;
  }
  return nullptr;
}

std::string QualifiedName(const api::ResourceKey& key) {
  if (key.namespace_().empty()) return key.name();
  return absl::StrCat(key.namespace_(), "/", key.name());
}

}  // namespace atl::ctl
