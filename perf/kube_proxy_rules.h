// The rulesets kube-proxy writes, for the dataplane benchmark's peers: the
// same services realised the way kube-proxy's iptables mode and nftables mode
// realise them, so that the benchmark measures those structures and not a
// simplification of them.
//
// iptables mode (pkg/proxy/iptables): nat chain KUBE-SERVICES holds one rule
// per service port, in order, jumping to KUBE-SVC-<hash>, which picks one of
// n endpoints with `statistic --mode random --probability 1/(n-i)` and jumps
// to KUBE-SEP-<hash>, which DNATs. Traffic from outside the cluster CIDR is
// marked for masquerade. The input is iptables-restore's, with --noflush, as
// kube-proxy's; a partial sync (an endpoint changed) rewrites KUBE-SERVICES
// whole and the changed service's chains, as kube-proxy does since 1.28.
//
// nftables mode (pkg/proxy/nftables): table ip kube-proxy, where the services
// chain does one lookup in the verdict map service-ips (address . protocol .
// port), whose service chain picks an endpoint chain with `numgen random mod
// n vmap`; plus the filter chains that reject traffic to services without
// endpoints and drop traffic to unallocated ClusterIPs. An endpoint change is
// an incremental transaction, as kube-proxy's.
#pragma once

#include <string>
#include <vector>

namespace atl::perf {

// One service port with its endpoints.
struct KubeServicePort {
  std::string ns;
  std::string name;
  std::string port_name;  // "http"
  std::string protocol;   // "tcp" or "udp"
  std::string cluster_ip;
  int port = 0;
  int target_port = 0;
  std::vector<std::string> endpoints;  // pod addresses, all ready
};

struct KubeProxyConfig {
  std::string cluster_cidr;  // the pods': service traffic from outside it is masqueraded
  std::string service_cidr;  // the ClusterIP range (nftables mode drops unallocated ones)
};

// iptables-restore input (with or without --noflush) that installs `services`, in this order
// in KUBE-SERVICES (the benchmark puts the measured one last).
std::string IptablesRuleset(const std::vector<KubeServicePort>& services,
                            const KubeProxyConfig& config);
// kube-proxy's partial sync after `before`'s endpoints became `after`'s:
// KUBE-SERVICES whole (`services` is the state after), the service's chain,
// its new endpoint chains, and the removal of the stale ones.
std::string IptablesEndpointChange(const std::vector<KubeServicePort>& services,
                                   const KubeServicePort& before, const KubeServicePort& after,
                                   const KubeProxyConfig& config);

// `nft -f` input that installs `services`.
std::string NftRuleset(const std::vector<KubeServicePort>& services,
                       const KubeProxyConfig& config);
// The transaction that changes `before`'s endpoints to `after`'s.
std::string NftEndpointChange(const KubeServicePort& before, const KubeServicePort& after,
                              const KubeProxyConfig& config);

}  // namespace atl::perf
