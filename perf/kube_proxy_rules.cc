#include "perf/kube_proxy_rules.h"

#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace atl::perf {
namespace {

// kube-proxy names chains after base32(sha256(...))[:16]; any stable hash of
// the same inputs gives chains of the same length and spread.
std::string Hash16(const std::string& s) {
  uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
  for (unsigned char c : s) {
    a = (a ^ c) * 0x100000001b3ULL;
    b = (b ^ c) * 0x100000001b3ULL + 1;
  }
  static constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    const uint64_t bits = i < 12 ? a >> (5 * i) : b >> (5 * (i - 12));
    out.push_back(kBase32[bits & 31]);
  }
  return out;
}

std::string PortName(const KubeServicePort& s) {  // "ns/name:port", kube-proxy's ServicePortName
  return absl::StrCat(s.ns, "/", s.name, ":", s.port_name);
}

std::string SvcChain(const KubeServicePort& s) {
  return "KUBE-SVC-" + Hash16(PortName(s) + s.protocol);
}

std::string SepChain(const KubeServicePort& s, const std::string& endpoint) {
  return "KUBE-SEP-" + Hash16(PortName(s) + s.protocol + endpoint);
}

// --- iptables -------------------------------------------------------------------

void IptablesServiceRule(std::string& out, const KubeServicePort& s) {
  absl::StrAppendFormat(&out,
                        "-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment \"%s cluster IP\" "
                        "-m %s --dport %d -j %s\n",
                        s.cluster_ip, s.protocol, PortName(s), s.protocol, s.port, SvcChain(s));
}

void IptablesServiceChains(std::string& chains, std::string& rules, const KubeServicePort& s,
                           const KubeProxyConfig& config) {
  const std::string svc = SvcChain(s);
  absl::StrAppend(&chains, ":", svc, " - [0:0]\n");
  absl::StrAppendFormat(&rules,
                        "-A %s ! -s %s -d %s/32 -p %s -m comment --comment \"%s cluster IP\" -m %s "
                        "--dport %d -j KUBE-MARK-MASQ\n",
                        svc, config.cluster_cidr, s.cluster_ip, s.protocol, PortName(s),
                        s.protocol, s.port);
  const size_t n = s.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& ep = s.endpoints[i];
    const std::string sep = SepChain(s, ep);
    absl::StrAppendFormat(&rules, "-A %s -m comment --comment \"%s -> %s:%d\"", svc, PortName(s),
                          ep, s.target_port);
    if (i + 1 < n) {
      absl::StrAppendFormat(&rules, " -m statistic --mode random --probability %.10f",
                            1.0 / static_cast<double>(n - i));
    }
    absl::StrAppend(&rules, " -j ", sep, "\n");
    absl::StrAppend(&chains, ":", sep, " - [0:0]\n");
    absl::StrAppendFormat(&rules, "-A %s -s %s/32 -m comment --comment %s -j KUBE-MARK-MASQ\n", sep,
                          ep, PortName(s));
    absl::StrAppendFormat(&rules,
                          "-A %s -p %s -m comment --comment %s -m %s -j DNAT "
                          "--to-destination %s:%d\n",
                          sep, s.protocol, PortName(s), s.protocol, ep, s.target_port);
  }
}

// The filter table as kube-proxy writes it on every sync; its KUBE-SERVICES
// only rejects services without endpoints, which the benchmark has none of.
void IptablesFilterTable(std::string& out, bool with_jumps) {
  absl::StrAppend(&out,
                  "*filter\n"
                  ":KUBE-SERVICES - [0:0]\n"
                  ":KUBE-EXTERNAL-SERVICES - [0:0]\n"
                  ":KUBE-FORWARD - [0:0]\n"
                  ":KUBE-NODEPORTS - [0:0]\n"
                  ":KUBE-PROXY-FIREWALL - [0:0]\n");
  if (with_jumps) {
    absl::StrAppend(
        &out,
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j "
        "KUBE-NODEPORTS\n"
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
        "service portals\" -j KUBE-EXTERNAL-SERVICES\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service "
        "portals\" -j KUBE-SERVICES\n"
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
        "service portals\" -j KUBE-EXTERNAL-SERVICES\n"
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
        "firewall\" -j KUBE-PROXY-FIREWALL\n"
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
        "-j KUBE-SERVICES\n");
  }
  absl::StrAppend(
      &out,
      "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m comment --comment \"kubernetes forwarding "
      "rules\" -j DROP\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
      "0x4000/0x4000 -j ACCEPT\n"
      "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
      "--ctstate RELATED,ESTABLISHED -j ACCEPT\n"
      "COMMIT\n");
}

void IptablesNatHead(std::string& chains, std::string& rules) {
  absl::StrAppend(&chains,
                  "*nat\n"
                  ":KUBE-SERVICES - [0:0]\n"
                  ":KUBE-NODEPORTS - [0:0]\n"
                  ":KUBE-POSTROUTING - [0:0]\n"
                  ":KUBE-MARK-MASQ - [0:0]\n");
  absl::StrAppend(
      &rules,
      "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
      "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j "
      "MASQUERADE --random-fully\n"
      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n");
}

void IptablesServicesChain(std::string& rules, const std::vector<KubeServicePort>& services) {
  for (const KubeServicePort& s : services) IptablesServiceRule(rules, s);
  absl::StrAppend(&rules,
                  "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: "
                  "this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j "
                  "KUBE-NODEPORTS\n");
}

// --- nftables ---------------------------------------------------------------------

std::string NftPortPath(const KubeServicePort& s) {  // "ns/name/tcp/http"
  return absl::StrCat(s.ns, "/", s.name, "/", s.protocol, "/", s.port_name);
}

std::string NftServiceChain(const KubeServicePort& s) {
  return absl::StrCat("service-", Hash16(NftPortPath(s)).substr(0, 8), "-", NftPortPath(s));
}

std::string NftEndpointChain(const KubeServicePort& s, const std::string& ep) {
  const std::string path = absl::StrCat(NftPortPath(s), "__", ep, "/", s.target_port);
  return absl::StrCat("endpoint-", Hash16(path).substr(0, 8), "-", path);
}

// An endpoint's chain: masquerade hairpin traffic, DNAT.
void NftEndpointChainCommands(std::string& out, const KubeServicePort& s, const std::string& ep) {
  const std::string chain = NftEndpointChain(s, ep);
  absl::StrAppend(&out, "add chain ip kube-proxy ", chain, "\n");
  absl::StrAppend(&out, "add rule ip kube-proxy ", chain, " ip saddr ", ep,
                  " jump mark-for-masquerade\n");
  absl::StrAppendFormat(&out, "add rule ip kube-proxy %s meta l4proto %s dnat to %s:%d\n", chain,
                        s.protocol, ep, s.target_port);
}

// The service chain's rules: masquerade traffic from outside the cluster,
// then pick an endpoint chain.
void NftServiceRules(std::string& out, const KubeServicePort& s, const KubeProxyConfig& config) {
  const std::string svc = NftServiceChain(s);
  std::vector<std::string> picks;
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    picks.push_back(absl::StrCat(i, " : goto ", NftEndpointChain(s, s.endpoints[i])));
  }
  absl::StrAppendFormat(&out,
                        "add rule ip kube-proxy %s ip daddr %s %s dport %d ip saddr != %s jump "
                        "mark-for-masquerade\n",
                        svc, s.cluster_ip, s.protocol, s.port, config.cluster_cidr);
  absl::StrAppendFormat(&out, "add rule ip kube-proxy %s numgen random mod %d vmap { %s }\n", svc,
                        s.endpoints.size(), absl::StrJoin(picks, ", "));
}

}  // namespace

std::string IptablesRuleset(const std::vector<KubeServicePort>& services,
                            const KubeProxyConfig& config) {
  std::string chains, rules;
  IptablesNatHead(chains, rules);
  absl::StrAppend(&rules,
                  "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j "
                  "KUBE-SERVICES\n"
                  "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j "
                  "KUBE-SERVICES\n"
                  "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
                  "KUBE-POSTROUTING\n");
  IptablesServicesChain(rules, services);
  for (const KubeServicePort& s : services) IptablesServiceChains(chains, rules, s, config);
  std::string out = std::move(chains);
  absl::StrAppend(&out, rules, "COMMIT\n");
  IptablesFilterTable(out, /*with_jumps=*/true);
  return out;
}

std::string IptablesEndpointChange(const std::vector<KubeServicePort>& services,
                                   const KubeServicePort& before, const KubeServicePort& after,
                                   const KubeProxyConfig& config) {
  std::string chains, rules;
  IptablesNatHead(chains, rules);
  IptablesServicesChain(rules, services);
  IptablesServiceChains(chains, rules, after, config);
  const std::set<std::string> kept(after.endpoints.begin(), after.endpoints.end());
  for (const std::string& ep : before.endpoints) {
    if (kept.contains(ep)) continue;
    // Declared (which flushes it) and then deleted, as kube-proxy removes a stale chain.
    absl::StrAppend(&chains, ":", SepChain(before, ep), " - [0:0]\n");
    absl::StrAppend(&rules, "-X ", SepChain(before, ep), "\n");
  }
  std::string out = std::move(chains);
  absl::StrAppend(&out, rules, "COMMIT\n");
  IptablesFilterTable(out, /*with_jumps=*/false);
  return out;
}

std::string NftRuleset(const std::vector<KubeServicePort>& services,
                       const KubeProxyConfig& config) {
  std::string out = absl::StrCat(
      "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n"
      "add chain ip kube-proxy mark-for-masquerade\n"
      "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000\n"
      "add chain ip kube-proxy masquerading\n"
      "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return\n"
      "add rule ip kube-proxy masquerading mark set mark xor 0x4000\n"
      "add rule ip kube-proxy masquerading masquerade fully-random\n"
      "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; "
      "comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n"
      "add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; }\n"
      "add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : "
      "verdict ; }\n"
      "add map ip kube-proxy firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict "
      "; }\n"
      "add set ip kube-proxy cluster-ips { type ipv4_addr ; }\n"
      "add chain ip kube-proxy filter-prerouting { type filter hook prerouting priority -110 ; }\n"
      "add chain ip kube-proxy filter-input { type filter hook input priority -110 ; }\n"
      "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }\n"
      "add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }\n"
      "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n"
      "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }\n"
      "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }\n"
      "add chain ip kube-proxy services\n"
      "add chain ip kube-proxy nodeports\n"
      "add chain ip kube-proxy firewall-check\n"
      "add chain ip kube-proxy service-endpoints-check\n"
      "add chain ip kube-proxy nodeport-endpoints-check\n"
      "add chain ip kube-proxy cluster-ips-check\n"
      "add rule ip kube-proxy filter-prerouting ct state new jump firewall-check\n"
      "add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check\n"
      "add rule ip kube-proxy filter-input ct state new jump service-endpoints-check\n"
      "add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check\n"
      "add rule ip kube-proxy filter-forward ct state new jump cluster-ips-check\n"
      "add rule ip kube-proxy filter-output ct state new jump service-endpoints-check\n"
      "add rule ip kube-proxy filter-output ct state new jump firewall-check\n"
      "add rule ip kube-proxy nat-prerouting jump services\n"
      "add rule ip kube-proxy nat-output jump services\n"
      "add rule ip kube-proxy nat-postrouting jump masquerading\n"
      "add rule ip kube-proxy firewall-check ip daddr . meta l4proto . th dport vmap "
      "@firewall-ips\n"
      "add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap "
      "@no-endpoint-services\n"
      "add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th "
      "dport vmap @service-nodeports\n"
      "add rule ip kube-proxy cluster-ips-check ip daddr @cluster-ips reject comment \"Reject "
      "traffic to invalid ports of ClusterIPs\"\n",
      "add rule ip kube-proxy cluster-ips-check ip daddr ", config.service_cidr,
      " drop comment \"Drop traffic to unallocated ClusterIPs\"\n"
      "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n"
      "add rule ip kube-proxy services ip daddr != 127.0.0.0/8 fib daddr type local jump "
      "nodeports\n"
      "add rule ip kube-proxy nodeports meta l4proto . th dport vmap @service-nodeports\n");
  std::vector<std::string> service_ips, cluster_ips;
  for (const KubeServicePort& s : services) {
    for (const std::string& ep : s.endpoints) NftEndpointChainCommands(out, s, ep);
    absl::StrAppend(&out, "add chain ip kube-proxy ", NftServiceChain(s), "\n");
    NftServiceRules(out, s, config);
    service_ips.push_back(absl::StrCat(s.cluster_ip, " . ", s.protocol, " . ", s.port,
                                       " : goto ", NftServiceChain(s)));
    cluster_ips.push_back(s.cluster_ip);
  }
  // Element lists in batches, as kube-proxy's transactions add them.
  for (size_t i = 0; i < service_ips.size(); i += 1000) {
    const size_t end = std::min(service_ips.size(), i + 1000);
    absl::StrAppend(&out, "add element ip kube-proxy service-ips { ",
                    absl::StrJoin(service_ips.begin() + i, service_ips.begin() + end, ", "),
                    " }\n");
    std::set<std::string> ips(cluster_ips.begin() + i, cluster_ips.begin() + end);
    absl::StrAppend(&out, "add element ip kube-proxy cluster-ips { ", absl::StrJoin(ips, ", "),
                    " }\n");
  }
  return out;
}

std::string NftEndpointChange(const KubeServicePort& before, const KubeServicePort& after,
                              const KubeProxyConfig& config) {
  const std::set<std::string> had(before.endpoints.begin(), before.endpoints.end());
  const std::set<std::string> kept(after.endpoints.begin(), after.endpoints.end());
  std::string out;
  for (const std::string& ep : after.endpoints) {
    if (!had.contains(ep)) NftEndpointChainCommands(out, after, ep);
  }
  absl::StrAppend(&out, "flush chain ip kube-proxy ", NftServiceChain(after), "\n");
  NftServiceRules(out, after, config);
  for (const std::string& ep : before.endpoints) {
    if (!kept.contains(ep)) {
      absl::StrAppend(&out, "delete chain ip kube-proxy ", NftEndpointChain(before, ep), "\n");
    }
  }
  return out;
}

}  // namespace atl::perf
