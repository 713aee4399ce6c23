#include "resource_key.h"

namespace atl::api::v1 {

Kind KindOf(const Resource& resource) {
  switch (resource.kind_case()) {
    case Resource::kNamespace:
      return KIND_NAMESPACE;
    case Resource::kSegment:
      return KIND_SEGMENT;
    case Resource::kService:
      return KIND_SERVICE;
    case Resource::kEndpointSlice:
      return KIND_ENDPOINT_SLICE;
    case Resource::kNode:
      return KIND_NODE;
    case Resource::KIND_NOT_SET:
      break;
  }
  return KIND_UNSPECIFIED;
}

ResourceKey KeyOf(const Resource& resource) {
  ResourceKey key;
  key.set_kind(KindOf(resource));
  switch (resource.kind_case()) {
    case Resource::kNamespace:
      key.set_name(resource.namespace_().name());
      break;
    case Resource::kSegment:
      key.set_name(resource.segment().namespace_());
      break;
    case Resource::kService:
      key.set_namespace_(resource.service().namespace_());
      key.set_name(resource.service().name());
      break;
    case Resource::kEndpointSlice:
      key.set_namespace_(resource.endpoint_slice().namespace_());
      key.set_name(resource.endpoint_slice().name());
      break;
    case Resource::kNode:
      key.set_name(resource.node().name());
      break;
    case Resource::KIND_NOT_SET:
      break;
  }
  return key;
}

const char* KindName(Kind kind) {
  switch (kind) {
    case KIND_NAMESPACE:
      return "Namespace";
    case KIND_SEGMENT:
      return "Segment";
    case KIND_SERVICE:
      return "Service";
    case KIND_ENDPOINT_SLICE:
      return "EndpointSlice";
    case KIND_NODE:
      return "Node";
    default:
      return "Resource";
  }
}

std::string Describe(const ResourceKey& key) {
  std::string out = KindName(key.kind());
  out += ' ';
  if (!key.namespace_().empty()) {
    out += key.namespace_();
    out += '/';
  }
  out += key.name();
  return out;
}

}  // namespace atl::api::v1
