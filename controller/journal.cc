#include "controller/journal.h"

#include <utility>

namespace atl::controller {
namespace api = ::atl::api::v1;

std::string Journal::MapKey(const api::ResourceKey& key) {
  std::string k;
  k.reserve(2 + key.namespace_().size() + 1 + key.name().size());
  k.push_back(static_cast<char>(key.kind()));
  k.push_back('\0');
  k.append(key.namespace_());
  k.push_back('\0');
  k.append(key.name());
  return k;
}

void Journal::Put(const api::ResourceKey& key, uint64_t revision, std::string data) {
  auto [it, inserted] = entries_.try_emplace(MapKey(key));
  Entry& e = it->second;
  if (!inserted) {
    order_.erase(e.at);
    if (!e.data) tombstones_.erase(e.at);
  } else {
    e.key = key;
  }
  e.at = Cursor{revision, next_seq_++};
  e.data = data.empty() ? nullptr : std::make_shared<const std::string>(std::move(data));
  order_.emplace(e.at, &e);
  if (!e.data) tombstones_.insert(e.at);
  revision_ = std::max(revision_, revision);
  end_ = e.at;
}

uint64_t Journal::Trim(size_t max_tombstones) {
  while (tombstones_.size() > max_tombstones) {
    auto oldest = tombstones_.begin();
    auto pos = order_.find(*oldest);
    compacted_ = std::max(compacted_, oldest->revision);
    entries_.erase(MapKey(pos->second->key));
    order_.erase(pos);
    tombstones_.erase(oldest);
  }
  return compacted_;
}

}  // namespace atl::controller
