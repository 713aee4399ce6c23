#include "controller/validate.h"

#include <google/protobuf/text_format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace atl::controller {
namespace {

using ::testing::HasSubstr;

api::Resource R(const std::string& text) {
  api::Resource r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &r)) << text;
  return r;
}

// Defaults, then checks, as PlanApply runs them.
absl::Status Check(const std::string& text, const ClusterConfig& config = ClusterConfig::Default()) {
  api::Resource r = R(text);
  ApplyDefaults(r);
  return ValidateResource(r, config);
}

TEST(ApplyDefaultsTest, ServiceGetsKubernetesDefaults) {
  api::Resource r = R(R"pb(service {
    namespace: "shop" name: "web"
    cluster_ips: "198.018.64.10"
    ports { port: 80 }
    external_ips: "FD00:A70::0001"
  })pb");
  ApplyDefaults(r);
  const api::Service& s = r.service();
  EXPECT_EQ(s.type(), api::SERVICE_TYPE_CLUSTER_IP);
  EXPECT_EQ(s.session_affinity(), api::SESSION_AFFINITY_NONE);
  EXPECT_EQ(s.session_affinity_timeout_seconds(), 0u);
  EXPECT_EQ(s.external_traffic_policy(), api::TRAFFIC_POLICY_CLUSTER);
  EXPECT_EQ(s.internal_traffic_policy(), api::TRAFFIC_POLICY_CLUSTER);
  EXPECT_EQ(s.ports(0).protocol(), api::PROTOCOL_TCP);
  EXPECT_EQ(s.ports(0).target_port(), "80");
  EXPECT_EQ(s.external_ips(0), "fd00:a70::1");
}

TEST(ApplyDefaultsTest, ClientIpAffinityGetsThreeHours) {
  api::Resource r = R(R"pb(service { session_affinity: SESSION_AFFINITY_CLIENT_IP })pb");
  ApplyDefaults(r);
  EXPECT_EQ(r.service().session_affinity_timeout_seconds(), 10800u);
  r = R(R"pb(service {
    session_affinity: SESSION_AFFINITY_CLIENT_IP
    session_affinity_timeout_seconds: 60
  })pb");
  ApplyDefaults(r);
  EXPECT_EQ(r.service().session_affinity_timeout_seconds(), 60u);
}

TEST(ApplyDefaultsTest, OtherKinds) {
  api::Resource ns = R(R"pb(namespace { name: "shop" cidr: "198.19.4.0/24" })pb");
  ApplyDefaults(ns);
  EXPECT_EQ(ns.namespace_().isolation(), api::ISOLATION_ISOLATED);
  api::Resource open = R(R"pb(namespace { name: "shop" isolation: ISOLATION_OPEN })pb");
  ApplyDefaults(open);
  EXPECT_EQ(open.namespace_().isolation(), api::ISOLATION_OPEN);

  api::Resource slice = R(R"pb(endpoint_slice {
    endpoints { addresses: "FD00::0A" }
    ports { port: 8080 }
  })pb");
  ApplyDefaults(slice);
  EXPECT_EQ(slice.endpoint_slice().address_type(), api::ADDRESS_TYPE_IPV4);
  EXPECT_EQ(slice.endpoint_slice().ports(0).protocol(), api::PROTOCOL_TCP);
  EXPECT_EQ(slice.endpoint_slice().endpoints(0).addresses(0), "fd00::a");
  // Conditions keep their meaning when unset; defaults do not invent them.
  EXPECT_FALSE(slice.endpoint_slice().endpoints(0).conditions().has_ready());

  api::Resource node = R(R"pb(node { name: "n1" underlay_address: "FD00::1" })pb");
  ApplyDefaults(node);
  EXPECT_EQ(node.node().underlay_address(), "fd00::1");
}

TEST(NamesTest, Dns1123AndDns1035) {
  EXPECT_TRUE(IsDns1123Label("shop"));
  EXPECT_TRUE(IsDns1123Label("0shop-1"));
  EXPECT_TRUE(IsDns1123Label(std::string(63, 'a')));
  EXPECT_FALSE(IsDns1123Label(std::string(64, 'a')));
  EXPECT_FALSE(IsDns1123Label(""));
  EXPECT_FALSE(IsDns1123Label("Shop"));
  EXPECT_FALSE(IsDns1123Label("-shop"));
  EXPECT_FALSE(IsDns1123Label("shop-"));
  EXPECT_FALSE(IsDns1123Label("sh_op"));
  EXPECT_FALSE(IsDns1123Label("a.b"));
  EXPECT_TRUE(IsDns1123Subdomain("web-abc12.shop"));
  EXPECT_FALSE(IsDns1123Subdomain("web..shop"));
  EXPECT_FALSE(IsDns1123Subdomain("web."));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(254, 'a')));
  EXPECT_TRUE(IsDns1035Label("web"));
  EXPECT_FALSE(IsDns1035Label("1web"));
}

struct Case {
  const char* what;
  std::string resource;
  std::string error;  // the whole message
};

class RejectTest : public ::testing::TestWithParam<Case> {};

TEST_P(RejectTest, NamesResourceFieldAndValue) {
  absl::Status s = Check(GetParam().resource);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(), GetParam().error);
}

std::string Svc(const std::string& body) {
  return "service { namespace: 'shop' name: 'web' " + body + " }";
}
std::string Slice(const std::string& body) {
  return "endpoint_slice { namespace: 'shop' name: 'web-1' service_name: 'web' " + body + " }";
}

INSTANTIATE_TEST_SUITE_P(
    Service, RejectTest,
    ::testing::Values(
        Case{"name", "service { namespace: 'shop' name: '1web' ports { port: 80 } }",
             "Service \"shop/1web\": metadata.name: \"1web\" is not a DNS-1035 label (at most 63 "
             "lowercase letters, digits and '-', starting with a letter and ending with a letter "
             "or digit)"},
        Case{"namespace", "service { namespace: 'Shop' name: 'web' ports { port: 80 } }",
             "Service \"Shop/web\": metadata.namespace: \"Shop\" is not a DNS-1123 label (at most "
             "63 lowercase letters, digits and '-', starting and ending with a letter or digit)"},
        Case{"no ports", Svc(""),
             "Service \"shop/web\": spec.ports: at least one port is required (unless clusterIP "
             "is None)"},
        Case{"port 0", Svc("ports { port: 0 }"),
             "Service \"shop/web\": spec.ports[0].port: 0 is outside 1-65535"},
        Case{"port too big", Svc("ports { port: 65536 }"),
             "Service \"shop/web\": spec.ports[0].port: 65536 is outside 1-65535"},
        Case{"unnamed second port", Svc("ports { name: 'http' port: 80 } ports { port: 443 }"),
             "Service \"shop/web\": spec.ports[1].name: required when there is more than one "
             "port"},
        Case{"duplicate name",
             Svc("ports { name: 'http' port: 80 } ports { name: 'http' port: 443 }"),
             "Service \"shop/web\": spec.ports[1].name: \"http\" is also the name of "
             "spec.ports[0]"},
        Case{"bad port name", Svc("ports { name: 'HTTP' port: 80 }"),
             "Service \"shop/web\": spec.ports[0].name: \"HTTP\" is not a DNS-1123 label (at "
             "most 63 lowercase letters, digits and '-', starting and ending with a letter or "
             "digit)"},
        Case{"duplicate port/protocol",
             Svc("ports { name: 'a' port: 53 protocol: PROTOCOL_UDP } ports { name: 'b' port: 53 "
                 "protocol: PROTOCOL_UDP }"),
             "Service \"shop/web\": spec.ports[1]: port 53/UDP is also spec.ports[0]"},
        Case{"bad protocol", Svc("ports { port: 80 protocol: 9 }"),
             "Service \"shop/web\": spec.ports[0].protocol: 9 is not a valid value"},
        Case{"target port number", Svc("ports { port: 80 target_port: '70000' }"),
             "Service \"shop/web\": spec.ports[0].targetPort: 70000 is outside 1-65535"},
        Case{"target port name", Svc("ports { port: 80 target_port: 'http--alt' }"),
             "Service \"shop/web\": spec.ports[0].targetPort: \"http--alt\" is neither a port "
             "number nor a port name (at most 15 lowercase letters, digits and '-', with at least "
             "one letter)"},
        Case{"nodePort on ClusterIP", Svc("ports { port: 80 node_port: 30080 }"),
             "Service \"shop/web\": spec.ports[0].nodePort: 30080 is not allowed for type "
             "ClusterIP"},
        Case{"nodePort out of range",
             Svc("type: SERVICE_TYPE_NODE_PORT ports { name: 'a' port: 80 node_port: 30080 } "
                 "ports { name: 'b' port: 81 node_port: 29999 }"),
             "Service \"shop/web\": spec.ports[1].nodePort: 29999 is outside 30000-32767"},
        Case{"nodePort twice",
             Svc("type: SERVICE_TYPE_NODE_PORT ports { name: 'a' port: 80 node_port: 30080 } "
                 "ports { name: 'b' port: 81 node_port: 30080 }"),
             "Service \"shop/web\": spec.ports[1].nodePort: 30080/TCP is also the nodePort of "
             "spec.ports[0]"},
        Case{"affinity timeout", Svc("ports { port: 80 } session_affinity: "
                                     "SESSION_AFFINITY_CLIENT_IP "
                                     "session_affinity_timeout_seconds: 86401"),
             "Service \"shop/web\": spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is "
             "outside 1-86400"},
        Case{"timeout without ClientIP", Svc("ports { port: 80 } session_affinity_timeout_seconds: 5"),
             "Service \"shop/web\": spec.sessionAffinityConfig.clientIP.timeoutSeconds: 5 is "
             "only allowed with sessionAffinity ClientIP"},
        Case{"clusterIP garbage", Svc("ports { port: 80 } cluster_ips: '198.18.64.300'"),
             "Service \"shop/web\": spec.clusterIPs[0]: \"198.18.64.300\" is not an IP address "
             "or \"None\""},
        Case{"clusterIP outside", Svc("ports { port: 80 } cluster_ips: '198.18.128.1'"),
             "Service \"shop/web\": spec.clusterIPs[0]: 198.18.128.1 is not inside the service "
             "CIDR 198.18.64.0/18"},
        Case{"clusterIP network", Svc("ports { port: 80 } cluster_ips: '198.18.64.0'"),
             "Service \"shop/web\": spec.clusterIPs[0]: 198.18.64.0 is the network or broadcast "
             "address of 198.18.64.0/18"},
        Case{"clusterIP v6 without v6 CIDR", Svc("ports { port: 80 } cluster_ips: 'fd00::10'"),
             "Service \"shop/web\": spec.clusterIPs[0]: fd00::10 is IPv6 but no IPv6 service "
             "CIDR is configured"},
        Case{"two v4 clusterIPs",
             Svc("ports { port: 80 } cluster_ips: '198.18.64.1' cluster_ips: '198.18.64.2'"),
             "Service \"shop/web\": spec.clusterIPs[1]: 198.18.64.2 is a second IPv4 address"},
        Case{"None with another", Svc("ports { port: 80 } cluster_ips: 'None' cluster_ips: "
                                      "'198.18.64.2'"),
             "Service \"shop/web\": spec.clusterIPs[0]: \"None\" must be the only clusterIP"},
        Case{"headless NodePort",
             Svc("type: SERVICE_TYPE_NODE_PORT ports { port: 80 } cluster_ips: 'None'"),
             "Service \"shop/web\": spec.type: NodePort is not allowed for a headless service "
             "(clusterIP None)"},
        Case{"Local on ClusterIP",
             Svc("ports { port: 80 } external_traffic_policy: TRAFFIC_POLICY_LOCAL"),
             "Service \"shop/web\": spec.externalTrafficPolicy: Local is only allowed for "
             "NodePort and LoadBalancer services or with externalIPs"},
        Case{"external IP", Svc("ports { port: 80 } external_ips: '127.0.0.1'"),
             "Service \"shop/web\": spec.externalIPs[0]: 127.0.0.1 is a loopback address"},
        Case{"LB IP on ClusterIP", Svc("ports { port: 80 } load_balancer_ips: '198.18.16.5'"),
             "Service \"shop/web\": spec.loadBalancerIPs[0]: 198.18.16.5 is only allowed for "
             "type LoadBalancer"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::to_string(info.index); });

INSTANTIATE_TEST_SUITE_P(
    EndpointSlice, RejectTest,
    ::testing::Values(
        Case{"no service name",
             "endpoint_slice { namespace: 'shop' name: 'web-1' }",
             "EndpointSlice \"shop/web-1\": serviceName: required (the "
             "kubernetes.io/service-name label)"},
        Case{"name", "endpoint_slice { namespace: 'shop' name: 'web_1' service_name: 'web' }",
             "EndpointSlice \"shop/web_1\": metadata.name: \"web_1\" is not a DNS-1123 subdomain "
             "(at most 253 characters: DNS-1123 labels joined by '.')"},
        Case{"family", Slice("endpoints { addresses: '198.19.0.5' } endpoints { addresses: "
                             "'fd00::5' }"),
             "EndpointSlice \"shop/web-1\": endpoints[1].addresses[0]: fd00::5 is not an IPv4 "
             "address (addressType IPv4)"},
        Case{"v6 slice", Slice("address_type: ADDRESS_TYPE_IPV6 endpoints { addresses: "
                               "'198.19.0.5' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses[0]: 198.19.0.5 is not an IPv6 "
             "address (addressType IPv6)"},
        Case{"garbage address", Slice("endpoints { addresses: 'pod-1' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses[0]: \"pod-1\" is not an IP "
             "address"},
        Case{"unspecified", Slice("endpoints { addresses: '0.0.0.0' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses[0]: 0.0.0.0 is the "
             "unspecified address"},
        Case{"multicast", Slice("endpoints { addresses: '224.0.0.1' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses[0]: 224.0.0.1 is a multicast "
             "address"},
        Case{"link-local v6", Slice("address_type: ADDRESS_TYPE_IPV6 endpoints { addresses: "
                                    "'fe80::1' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses[0]: fe80::1 is a link-local "
             "address"},
        Case{"no address", Slice("endpoints { node_name: 'n1' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].addresses: 0 addresses; 1-100 are "
             "allowed"},
        Case{"ready and terminating",
             Slice("endpoints { addresses: '198.19.0.5' conditions { ready: true terminating: "
                   "true } }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].conditions: ready cannot be true while "
             "terminating is true"},
        Case{"node name", Slice("endpoints { addresses: '198.19.0.5' node_name: 'N1' }"),
             "EndpointSlice \"shop/web-1\": endpoints[0].nodeName: \"N1\" is not a DNS-1123 "
             "subdomain (at most 253 characters: DNS-1123 labels joined by '.')"},
        Case{"port", Slice("ports { name: 'http' port: 0 }"),
             "EndpointSlice \"shop/web-1\": ports[0].port: 0 is outside 1-65535"},
        Case{"port names", Slice("ports { port: 80 } ports { port: 81 }"),
             "EndpointSlice \"shop/web-1\": ports[1].name: \"\" is also the name of ports[0]"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::to_string(info.index); });

INSTANTIATE_TEST_SUITE_P(
    NamespaceAndNode, RejectTest,
    ::testing::Values(
        Case{"name", "namespace { name: 'shop.eu' }",
             "Namespace \"shop.eu\": metadata.name: \"shop.eu\" is not a DNS-1123 label (at most "
             "63 lowercase letters, digits and '-', starting and ending with a letter or digit)"},
        Case{"host bits", "namespace { name: 'shop' cidr: '198.19.4.1/24' }",
             "Namespace \"shop\": spec.cidr: \"198.19.4.1/24\" is not a CIDR (an address and a "
             "prefix length, with the host bits zero)"},
        Case{"outside pod CIDR", "namespace { name: 'shop' cidr: '198.20.4.0/24' }",
             "Namespace \"shop\": spec.cidr: 198.20.4.0/24 is not inside the pod CIDR "
             "198.19.0.0/16"},
        Case{"bigger than pod CIDR", "namespace { name: 'shop' cidr: '198.18.0.0/15' }",
             "Namespace \"shop\": spec.cidr: 198.18.0.0/15 is not inside the pod CIDR "
             "198.19.0.0/16"},
        Case{"smaller than a block", "namespace { name: 'shop' cidr: '198.19.4.0/29' }",
             "Namespace \"shop\": spec.cidr: 198.19.4.0/29 is smaller than one node block (/28)"},
        Case{"v6 cidr", "namespace { name: 'shop' cidr: 'fd00:a70::/64' }",
             "Namespace \"shop\": spec.cidr: fd00:a70::/64 is not inside the pod CIDR "
             "198.19.0.0/16"},
        Case{"egress in pods", "namespace { name: 'shop' egress_ip: '198.19.0.9' }",
             "Namespace \"shop\": spec.egressIP: 198.19.0.9 is inside the pod CIDR "
             "198.19.0.0/16"},
        Case{"egress garbage", "namespace { name: 'shop' egress_ip: 'egress' }",
             "Namespace \"shop\": spec.egressIP: \"egress\" is not an IP address"},
        Case{"admitted", "namespace { name: 'shop' admitted_namespaces: 'ok' "
                         "admitted_namespaces: 'Bad' }",
             "Namespace \"shop\": spec.admittedNamespaces[1]: \"Bad\" is not a DNS-1123 label (at "
             "most 63 lowercase letters, digits and '-', starting and ending with a letter or "
             "digit)"},
        Case{"isolation", "namespace { name: 'shop' isolation: 7 }",
             "Namespace \"shop\": spec.isolation: 7 is not a valid value"},
        Case{"underlay missing", "node { name: 'n1' }",
             "Node \"n1\": spec.underlayAddress: required"},
        Case{"underlay in services", "node { name: 'n1' underlay_address: '198.18.64.7' }",
             "Node \"n1\": spec.underlayAddress: 198.18.64.7 is inside the service CIDR "
             "198.18.64.0/18"},
        Case{"underlay in pods", "node { name: 'n1' underlay_address: '198.19.200.7' }",
             "Node \"n1\": spec.underlayAddress: 198.19.200.7 is inside the pod CIDR "
             "198.19.0.0/16"},
        Case{"underlay loopback", "node { name: 'n1' underlay_address: '::1' }",
             "Node \"n1\": spec.underlayAddress: ::1 is a loopback address"},
        Case{"block length",
             "node { name: 'n1' underlay_address: '198.18.0.11' blocks { namespace: 'shop' "
             "cidr: '198.19.0.0/24' } }",
             "Node \"n1\": spec.blocks[0].cidr: 198.19.0.0/24 is not a /28 block of the pod "
             "CIDR 198.19.0.0/16"},
        Case{"segment", "segment { namespace: 'shop' id: 5 }",
             "Segment \"shop\": segments are managed by the controller and cannot be applied"},
        Case{"no kind", "", "a resource without a kind was applied"}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::to_string(info.index); });

TEST(ValidateTest, AcceptsCompleteResources) {
  EXPECT_TRUE(Check("namespace { name: 'shop' cidr: '198.19.4.0/23' egress_ip: '198.18.16.9' "
                    "admitted_namespaces: 'monitoring' }")
                  .ok());
  EXPECT_TRUE(Check("namespace { name: 'shop' cidr: '198.19.4.16/28' }").ok());
  EXPECT_TRUE(Check(Svc("type: SERVICE_TYPE_LOAD_BALANCER cluster_ips: '198.18.64.10' "
                        "ports { name: 'http' port: 80 target_port: 'http' node_port: 30080 } "
                        "ports { name: 'dns' port: 53 protocol: PROTOCOL_UDP node_port: 30080 } "
                        "session_affinity: SESSION_AFFINITY_CLIENT_IP "
                        "external_traffic_policy: TRAFFIC_POLICY_LOCAL "
                        "internal_traffic_policy: TRAFFIC_POLICY_LOCAL "
                        "external_ips: '198.18.16.1' load_balancer_ips: '198.18.16.2'"))
                  .ok());
  // Headless: no ports needed.
  EXPECT_TRUE(Check(Svc("cluster_ips: 'None'")).ok());
  EXPECT_TRUE(Check(Slice("endpoints { addresses: '198.19.0.5' node_name: 'n1' zone: 'a' "
                          "conditions { ready: false serving: true terminating: true } } "
                          "ports { name: 'http' port: 8080 }"))
                  .ok());
  EXPECT_TRUE(Check("node { name: 'n1.rack-2' underlay_address: '198.18.0.11' blocks { "
                    "namespace: 'shop' cidr: '198.19.4.16/28' } }")
                  .ok());
}

TEST(ValidateTest, DualStackServiceCidrs) {
  ClusterConfig config = ClusterConfig::Default();
  config.service_cidrs.push_back(lb::IpPrefix::Parse("fd00:a70:1::/112").value());
  EXPECT_TRUE(Check(Svc("ports { port: 80 } cluster_ips: '198.18.64.9' cluster_ips: "
                        "'fd00:a70:1::9'"),
                    config)
                  .ok());
  absl::Status s = Check(Svc("ports { port: 80 } cluster_ips: 'fd00:a70:2::9'"), config);
  EXPECT_EQ(s.message(), "Service \"shop/web\": spec.clusterIPs[0]: fd00:a70:2::9 is not inside "
                         "the service CIDR fd00:a70:1::/112");
}

TEST(ValidateTest, EndpointLimits) {
  std::string body;
  for (int i = 0; i < 1001; ++i) body += "endpoints { addresses: '198.19.0.5' } ";
  absl::Status s = Check(Slice(body));
  EXPECT_EQ(s.message(),
            "EndpointSlice \"shop/web-1\": endpoints: 1001 endpoints exceed the limit of 1000");
}

TEST(ClusterConfigTest, DefaultIsValid) {
  const ClusterConfig c = ClusterConfig::Default();
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  EXPECT_EQ(c.pod_cidr.ToString(), "198.19.0.0/16");
  ASSERT_EQ(c.service_cidrs.size(), 1u);
  EXPECT_EQ(c.service_cidrs[0].ToString(), "198.18.64.0/18");
  EXPECT_EQ(c.namespace_prefix_len, 24);
  EXPECT_EQ(c.node_block_len, 28);
  EXPECT_EQ(c.node_port_min, 30000u);
  EXPECT_EQ(c.node_port_max, 32767u);
}

TEST(ClusterConfigTest, RejectsInconsistentRanges) {
  ClusterConfig c = ClusterConfig::Default();
  c.service_cidrs = {lb::IpPrefix::Parse("198.19.128.0/18").value()};
  EXPECT_EQ(c.Validate().message(),
            "service CIDR 198.19.128.0/18 overlaps the pod CIDR 198.19.0.0/16");

  c = ClusterConfig::Default();
  c.service_cidrs.push_back(lb::IpPrefix::Parse("198.18.128.0/18").value());
  EXPECT_THAT(c.Validate().message(),
              HasSubstr("198.18.64.0/18 and 198.18.128.0/18 are of the same family"));

  c = ClusterConfig::Default();
  c.namespace_prefix_len = 12;
  EXPECT_THAT(c.Validate().message(), HasSubstr("/12 does not fit the pod CIDR 198.19.0.0/16"));

  c = ClusterConfig::Default();
  c.node_block_len = 20;
  EXPECT_THAT(c.Validate().message(), HasSubstr("node block length /20"));

  c = ClusterConfig::Default();
  c.service_cidrs = {};
  EXPECT_EQ(c.Validate().message(), "no service CIDR is configured");

  c = ClusterConfig::Default();
  c.node_port_min = 40000;
  c.node_port_max = 30000;
  EXPECT_THAT(c.Validate().message(), HasSubstr("node port range 40000-30000"));

  c = ClusterConfig::Default();
  c.service_cidrs = {lb::IpPrefix::Parse("198.18.64.0/31").value()};
  EXPECT_THAT(c.Validate().message(), HasSubstr("198.18.64.0/31 is too small"));
}

}  // namespace
}  // namespace atl::controller
