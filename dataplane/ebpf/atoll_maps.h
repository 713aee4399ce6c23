/* The eBPF dataplane's maps. Every map is pinned by name under the agent's
 * --bpf_pin_dir, so that a restarted agent (and the programs it loads) finds
 * the services, pods and connections of the one before it. */
#ifndef ATOLL_DATAPLANE_EBPF_ATOLL_MAPS_H_
#define ATOLL_DATAPLANE_EBPF_ATOLL_MAPS_H_

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "atoll_types.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct atl_svc_key);
  __type(value, struct atl_svc);
  __uint(max_entries, ATL_MAX_SERVICES);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_services SEC(".maps");

/* Regions of these two arrays belong to services (atl_svc's offsets); the
 * agent fills a new region before it points a service at it. Memory-mapped,
 * so that programming 10,000 services is a copy, not 10,000 system calls. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct atl_backend);
  __uint(max_entries, ATL_MAX_BACKEND_SLOTS);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct atl_maglev_entry);
  __uint(max_entries, ATL_MAX_MAGLEV_ENTRIES);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_maglev SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct atl_ct_key);
  __type(value, struct atl_ct);
  __uint(max_entries, ATL_MAX_CT);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_ct SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __type(key, struct atl_affinity_key);
  __type(value, struct atl_affinity);
  __uint(max_entries, ATL_MAX_AFFINITY);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_affinity SEC(".maps");

/* Pod ports by host-side ifindex, and the same by pod address. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __u32);
  __type(value, struct atl_pod);
  __uint(max_entries, ATL_MAX_PODS);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_pod_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __be32);
  __type(value, struct atl_pod);
  __uint(max_entries, ATL_MAX_PODS);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_pods SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct atl_lpm_key);
  __type(value, struct atl_segment);
  __uint(max_entries, ATL_MAX_PREFIXES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_segments SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct atl_lpm_key);
  __type(value, struct atl_remote_block);
  __uint(max_entries, ATL_MAX_PREFIXES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_remote_blocks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct atl_admit_key);
  __type(value, __u8);
  __uint(max_entries, ATL_MAX_SEGMENT_PAIRS);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_admit SEC(".maps");

/* This node's addresses: NodePort frontends answer on each. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, __be32);
  __type(value, __u8);
  __uint(max_entries, 64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_node_addrs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct atl_config);
  __uint(max_entries, 1);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, ATL_DROP_REASONS);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} atl_drops SEC(".maps");

#endif /* ATOLL_DATAPLANE_EBPF_ATOLL_MAPS_H_ */
