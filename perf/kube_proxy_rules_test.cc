// The peers' rulesets load into the kernel and say what kube-proxy's would:
// iptables-restore and nft take them (in a network namespace of the test's
// own), the chains exist with the rules expected, and an endpoint change
// leaves the service pointing at the new endpoint only. Needs root.
#include "perf/kube_proxy_rules.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace atl::perf {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Runs `command` with `input` on stdin; its exit status and stdout.
std::pair<int, std::string> Shell(const std::string& command, const std::string& input = "") {
  char path[] = "/tmp/kube-proxy-rules-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << input;
  FILE* p = popen(absl::StrCat(command, " < ", path, " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  unlink(path);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const KubeProxyConfig kConfig{.cluster_cidr = "198.19.0.0/16", .service_cidr = "198.18.64.0/18"};

std::vector<KubeServicePort> Services() {
  std::vector<KubeServicePort> services;
  for (int i = 1; i <= 3; ++i) {
    services.push_back({.ns = "bench",
                        .name = absl::StrCat("s", i),
                        .port_name = "http",
                        .protocol = i == 3 ? "udp" : "tcp",
                        .cluster_ip = absl::StrCat("198.18.64.", i),
                        .port = 80,
                        .target_port = 8080,
                        .endpoints = {absl::StrCat("198.19.1.", i), absl::StrCat("198.19.2.", i),
                                      absl::StrCat("198.19.3.", i)}});
  }
  return services;
}

class KubeProxyRulesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "needs root"; }
};

TEST_F(KubeProxyRulesTest, IptablesRulesetLoadsAndChangesAnEndpoint) {
  std::vector<KubeServicePort> services = Services();
  auto [code, out] = Shell("iptables-restore --noflush", IptablesRuleset(services, kConfig));
  ASSERT_EQ(code, 0) << out;
  auto [save_code, saved] = Shell("iptables-save -t nat");
  ASSERT_EQ(save_code, 0) << saved;
  // Three services in KUBE-SERVICES, the last one UDP, with the nodeports rule after them.
  EXPECT_THAT(saved, HasSubstr("-A KUBE-SERVICES -d 198.18.64.3/32 -p udp"));
  EXPECT_THAT(saved, HasSubstr("--mode random --probability 0.33333333349"));
  EXPECT_THAT(saved, HasSubstr("-j DNAT --to-destination 198.19.2.1:8080"));
  EXPECT_LT(saved.find("198.18.64.3/32"), saved.find("--dst-type LOCAL -j KUBE-NODEPORTS"));

  KubeServicePort after = services[0];
  after.endpoints[1] = "198.19.9.9";
  std::vector<KubeServicePort> now = services;
  now[0] = after;
  auto [change_code, change_out] =
      Shell("iptables-restore --noflush", IptablesEndpointChange(now, services[0], after, kConfig));
  ASSERT_EQ(change_code, 0) << change_out;
  saved = Shell("iptables-save -t nat").second;
  EXPECT_THAT(saved, HasSubstr("--to-destination 198.19.9.9:8080"));
  EXPECT_THAT(saved, Not(HasSubstr("--to-destination 198.19.2.1:8080")));
  EXPECT_THAT(saved, HasSubstr("--to-destination 198.19.2.2:8080"));  // other services kept
  Shell("iptables -t nat -F; iptables -t nat -X; iptables -F; iptables -X");
}

TEST_F(KubeProxyRulesTest, NftRulesetLoadsAndChangesAnEndpoint) {
  std::vector<KubeServicePort> services = Services();
  auto [code, out] = Shell("nft -f -", NftRuleset(services, kConfig));
  ASSERT_EQ(code, 0) << out;
  auto [list_code, listed] = Shell("nft list table ip kube-proxy");
  ASSERT_EQ(list_code, 0) << listed;
  EXPECT_THAT(listed, HasSubstr("198.18.64.3 . udp . 80 : goto service-"));
  EXPECT_THAT(listed, HasSubstr("numgen random mod 3 vmap"));
  EXPECT_THAT(listed, HasSubstr("dnat to 198.19.2.1:8080"));

  KubeServicePort after = services[0];
  after.endpoints[1] = "198.19.9.9";
  auto [change_code, change_out] =
      Shell("nft -f -", NftEndpointChange(services[0], after, kConfig));
  ASSERT_EQ(change_code, 0) << change_out;
  listed = Shell("nft list table ip kube-proxy").second;
  EXPECT_THAT(listed, HasSubstr("dnat to 198.19.9.9:8080"));
  EXPECT_THAT(listed, Not(HasSubstr("dnat to 198.19.2.1:8080")));
  EXPECT_THAT(listed, HasSubstr("dnat to 198.19.2.2:8080"));
  Shell("nft flush ruleset");
}

}  // namespace
}  // namespace atl::perf
