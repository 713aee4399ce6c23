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

api::ResourceKey KeyOf(const api::Resource& resource) {
  api::ResourceKey key;
  switch (resource.kind_case()) {
    case api::Resource::kNamespace:
      key.set_kind(api::KIND_NAMESPACE);
      key.set_name(resource.namespace_().name());
      break;
    case api::Resource::kSegment:
      key.set_kind(api::KIND_SEGMENT);
      key.set_name(resource.segment().namespace_());
      break;
    case api::Resource::kService:
      key.set_kind(api::KIND_SERVICE);
      key.set_namespace_(resource.service().namespace_());
      key.set_name(resource.service().name());
      break;
    case api::Resource::kEndpointSlice:
      key.set_kind(api::KIND_ENDPOINT_SLICE);
      key.set_namespace_(resource.endpoint_slice().namespace_());
      key.set_name(resource.endpoint_slice().name());
      break;
    case api::Resource::kNode:
      key.set_kind(api::KIND_NODE);
      key.set_name(resource.node().name());
      break;
    case api::Resource::KIND_NOT_SET:
      break;
  }
  return key;
}

std::string QualifiedName(const api::ResourceKey& key) {
  if (key.namespace_().empty()) return key.name();
  return absl::StrCat(key.namespace_(), "/", key.name());
}

}  // namespace atl::ctl
