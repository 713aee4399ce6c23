#include "atollctl/format.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "atollctl/manifest.h"

namespace atl::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

template <typename M>
M FromText(const std::string& text) {
  M message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// Every field of every kind set, with values that a careless printer would
// change the type of on the way back ("8080" as a port name, "true" as a zone).
std::vector<api::Resource> EveryField() {
  return {
      FromText<api::Resource>(R"pb(namespace {
                                     name: "shop"
                                     isolation: ISOLATION_OPEN
                                     admitted_namespaces: [ "monitoring", "ingress" ]
                                     egress_ip: "198.18.16.10"
                                     cidr: "198.19.4.0/24"
                                   })pb"),
      FromText<api::Resource>(R"pb(namespace { name: "plain" })pb"),
      FromText<api::Resource>(R"pb(service {
                                     namespace: "shop"
                                     name: "web"
                                     type: SERVICE_TYPE_LOAD_BALANCER
                                     cluster_ips: [ "198.18.64.10", "fd00:a70:ffff::10" ]
                                     ports {
                                       name: "http"
                                       protocol: PROTOCOL_TCP
                                       port: 80
                                       target_port: "8080"
                                       node_port: 30080
                                     }
                                     ports { name: "metrics" port: 9090 target_port: "metrics" }
                                     ports { protocol: PROTOCOL_UDP port: 53 target_port: "053" }
                                     ports { protocol: PROTOCOL_SCTP port: 0 }
                                     session_affinity: SESSION_AFFINITY_CLIENT_IP
                                     session_affinity_timeout_seconds: 600
                                     external_traffic_policy: TRAFFIC_POLICY_LOCAL
                                     internal_traffic_policy: TRAFFIC_POLICY_CLUSTER
                                     external_ips: "198.18.16.20"
                                     load_balancer_ips: [ "198.18.16.30", "198.18.16.31" ]
                                   })pb"),
      FromText<api::Resource>(
          R"pb(service { namespace: "shop" name: "db" cluster_ips: "None" })pb"),
      FromText<api::Resource>(R"pb(endpoint_slice {
                                     namespace: "shop"
                                     name: "web-abc12"
                                     service_name: "web"
                                     address_type: ADDRESS_TYPE_IPV4
                                     endpoints {
                                       addresses: "198.19.4.10"
                                       conditions { ready: true serving: true terminating: false }
                                       node_name: "h1"
                                       zone: "true"
                                       weight: 3
                                     }
                                     endpoints {
                                       addresses: [ "198.19.4.11", "198.19.4.12" ]
                                       conditions { ready: false }
                                     }
                                     endpoints {}
                                     ports { name: "http" protocol: PROTOCOL_TCP port: 8080 }
                                     ports { name: "" }
                                   })pb"),
      FromText<api::Resource>(R"pb(node {
                                     name: "h1"
                                     underlay_address: "198.18.0.1"
                                     blocks { namespace: "shop" cidr: "198.19.4.0/26" }
                                     blocks { namespace: "plain" cidr: "198.19.5.0/26" }
                                   })pb"),
      FromText<api::Resource>(R"pb(node { name: "h2" })pb"),
      FromText<api::Resource>(R"pb(segment {
                                     namespace: "shop"
                                     id: 7
                                     cidrs: [ "198.19.4.0/24", "198.19.9.0/24" ]
                                     gateway: "198.19.4.1"
                                   })pb"),
  };
}

void ExpectRoundTrip(const std::vector<api::Resource>& resources, OutputFormat format) {
  const std::string text = RenderManifests(resources, format, /*as_list=*/true);
  absl::StatusOr<std::vector<api::Resource>> back = ParseManifests(text, "out", "elsewhere");
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  ASSERT_EQ(back->size(), resources.size()) << text;
  for (size_t i = 0; i < resources.size(); ++i) {
    std::string diff;
    google::protobuf::util::MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(resources[i], (*back)[i]))
        << "resource " << i << ": " << diff << "\n"
        << text;
  }
}

TEST(RenderManifests, YamlRoundTrips) { ExpectRoundTrip(EveryField(), OutputFormat::kYaml); }

TEST(RenderManifests, JsonRoundTrips) { ExpectRoundTrip(EveryField(), OutputFormat::kJson); }

TEST(RenderManifests, EachObjectAloneRoundTrips) {
  for (const api::Resource& resource : EveryField()) {
    for (OutputFormat format : {OutputFormat::kYaml, OutputFormat::kJson}) {
      const std::string text = RenderManifests({&resource, 1}, format, /*as_list=*/false);
      absl::StatusOr<std::vector<api::Resource>> back = ParseManifests(text, "out", "x");
      ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
      ASSERT_EQ(back->size(), 1u);
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(resource, back->front()))
          << text;
    }
  }
}

TEST(RenderManifests, YamlIsKubernetesShaped) {
  const auto resources = EveryField();
  EXPECT_EQ(RenderManifests({&resources[2], 1}, OutputFormat::kYaml, false),
            R"(apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  clusterIP: 198.18.64.10
  clusterIPs:
    - 198.18.64.10
    - fd00:a70:ffff::10
  ports:
    - name: http
      protocol: TCP
      port: 80
      targetPort: 8080
      nodePort: 30080
    - name: metrics
      port: 9090
      targetPort: metrics
    - protocol: UDP
      port: 53
      targetPort: "053"
    - protocol: SCTP
      port: 0
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 600
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  externalIPs:
    - 198.18.16.20
status:
  loadBalancer:
    ingress:
      - ip: 198.18.16.30
      - ip: 198.18.16.31
)");
}

TEST(RenderManifests, JsonOfOneNamespace) {
  const auto resources = EveryField();
  EXPECT_EQ(RenderManifests({&resources[0], 1}, OutputFormat::kJson, false), R"({
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "name": "shop",
        "annotations": {
            "atoll.io/isolation": "open",
            "atoll.io/admitted-namespaces": "monitoring,ingress",
            "atoll.io/egress-ip": "198.18.16.10",
            "atoll.io/cidr": "198.19.4.0/24"
        }
    }
}
)");
}

TEST(RenderManifests, EmptyListIsAList) {
  EXPECT_EQ(RenderManifests({}, OutputFormat::kYaml, true),
            "apiVersion: v1\nkind: List\nitems: []\n");
}

TEST(RenderTable, Services) {
  const auto resources = EveryField();
  EXPECT_EQ(
      RenderTable({&resources[2], 2}, /*wide=*/false, /*with_namespace=*/true),
      R"(NAMESPACE   NAME      TYPE           CLUSTER-IP                       EXTERNAL-IP                              PORT(S)
shop        web       LoadBalancer   198.18.64.10,fd00:a70:ffff::10   198.18.16.20,198.18.16.30,198.18.16.31   80:30080/TCP,9090/TCP,53/UDP,0/SCTP
shop        db        ClusterIP      None                             <none>                                   <none>
)");
}

TEST(RenderTable, ServicesWideWithoutNamespace) {
  api::Resource resource =
      FromText<api::Resource>(R"pb(service {
                                     namespace: "shop"
                                     name: "lb"
                                     type: SERVICE_TYPE_LOAD_BALANCER
                                     ports { port: 443 node_port: 30443 }
                                     session_affinity: SESSION_AFFINITY_CLIENT_IP
                                     session_affinity_timeout_seconds: 60
                                   })pb");
  EXPECT_EQ(
      RenderTable({&resource, 1}, /*wide=*/true, /*with_namespace=*/false),
      R"(NAME      TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)         AFFINITY        EXTERNAL-POLICY   INTERNAL-POLICY
lb        LoadBalancer   <none>       <pending>     443:30443/TCP   ClientIP(60s)   Cluster           Cluster
)");
}

TEST(RenderTable, EndpointSlices) {
  api::Resource many = FromText<api::Resource>(R"pb(endpoint_slice {
                                                      namespace: "shop"
                                                      name: "many"
                                                      service_name: "web"
                                                      endpoints { addresses: "198.19.4.1" }
                                                      endpoints { addresses: "198.19.4.2" }
                                                      endpoints { addresses: "198.19.4.3" }
                                                      endpoints {
                                                        addresses: "198.19.4.4"
                                                        conditions { ready: false }
                                                      }
                                                      endpoints { addresses: "198.19.4.5" }
                                                      ports { port: 8080 }
                                                      ports { port: 8443 }
                                                    })pb");
  EXPECT_EQ(RenderTable({&many, 1}, false, false),
            "NAME      SERVICE   ADDRESSTYPE   PORTS       ENDPOINTS\n"
            "many      web       IPv4          8080,8443   198.19.4.1,198.19.4.2,198.19.4.3 + 2 "
            "more...\n");
  EXPECT_THAT(RenderTable({&many, 1}, true, false),
              HasSubstr("198.19.4.1,198.19.4.2,198.19.4.3,198.19.4.4,198.19.4.5   198.19.4.4\n"));
}

TEST(RenderTable, NamespacesNodesSegmentsOneTableEach) {
  const auto resources = EveryField();
  std::vector<api::Resource> mixed = {resources[0], resources[1], resources[5], resources[6],
                                      resources[7]};
  EXPECT_EQ(RenderTable(mixed, false, false),
            "NAME      ISOLATION   ADMITTED             EGRESS\n"
            "shop      open        monitoring,ingress   198.18.16.10\n"
            "plain     isolated    <none>               <node>\n"
            "\n"
            "NAME      UNDERLAY     BLOCKS\n"
            "h1        198.18.0.1   shop=198.19.4.0/26,plain=198.19.5.0/26\n"
            "h2        <none>       <none>\n"
            "\n"
            "NAME      VNI       CIDRS                         GATEWAY\n"
            "shop      7         198.19.4.0/24,198.19.9.0/24   198.19.4.1\n");
}

TEST(RenderStatus, Table) {
  auto status = FromText<api::StatusResponse>(R"pb(
    version: 42
    store_id: "st-1"
    agents { node: "h1" connected: true sent_version: 42 acked_version: 42 }
    agents {
      node: "h2"
      connected: false
      sent_version: 41
      acked_version: 40
      last_error: "segment shop: VNI 7 in use"
    })pb");
  EXPECT_EQ(RenderStatus(status, OutputFormat::kTable),
            "Controller version 42, store st-1\n"
            "NODE      CONNECTED   ACKED     SENT      LAST-ERROR\n"
            "h1        yes         42        42        <none>\n"
            "h2        no          40        41        segment shop: VNI 7 in use\n");
  EXPECT_EQ(RenderStatus(api::StatusResponse(), OutputFormat::kTable),
            "Controller version 0, store <none>\nNo agents have connected.\n");
}

TEST(RenderStatus, JsonAndYamlUseTheProtoMapping) {
  auto status = FromText<api::StatusResponse>(
      R"pb(version: 42
           agents { node: "h1" connected: true acked_version: 42 })pb");
  const std::string json = RenderStatus(status, OutputFormat::kJson);
  EXPECT_THAT(json, HasSubstr("\"version\": \"42\""));
  EXPECT_THAT(json, HasSubstr("\"ackedVersion\": \"42\""));
  EXPECT_THAT(json, HasSubstr("\"lastError\": \"\""));
  const std::string yaml = RenderStatus(status, OutputFormat::kYaml);
  EXPECT_THAT(yaml, HasSubstr("version: \"42\"\n"));
  EXPECT_THAT(yaml, HasSubstr("connected: true\n"));
}

TEST(RenderAgentState, HeaderFrontendsSegmentsRoutesPods) {
  auto state = FromText<api::AgentStateResponse>(R"pb(
    node: "h1"
    dataplane: "ebpf"
    controller: "198.18.0.100:7470"
    connected: true
    version: 42
    store_id: "st-1"
    resources: 9
    segments { namespace: "shop" id: 7 cidrs: "198.19.4.0/24" gateway: "198.19.4.1" }
    frontends {
      service: "shop/web:http"
      address: "198.18.64.10"
      port: 80
      protocol: PROTOCOL_TCP
      maglev_size: 65537
      affinity_timeout_seconds: 600
      backends { address: "198.19.4.10" port: 8080 weight: 1 serving: true node_local: true }
      backends { address: "198.19.4.11" port: 8080 weight: 3 serving: true terminating: true }
    }
    frontends {
      service: "shop/web:http"
      port: 30080
      protocol: PROTOCOL_TCP
      external: true
      maglev_size: 65537
    }
    routes { cidr: "198.19.4.64/26" node: "h2" underlay_address: "198.18.0.2" vni: 7 }
    pod_ports {
      pod: "shop/web-1"
      host_ifname: "atl0123456789a"
      host_ifindex: 12
      address: "198.19.4.10"
      mac: "0a:58:c6:13:04:0a"
    }
    packets { name: "packets" value: 1200 }
    packets { name: "new_flows" value: 30 }
    drops { name: "malformed" value: 0 }
    drops { name: "spoofed" value: 3 }
    drops { name: "isolated" value: 1 })pb");
  EXPECT_EQ(RenderAgentState(state, OutputFormat::kTable), R"(Node:        h1
Dataplane:   ebpf
Controller:  198.18.0.100:7470 (connected)
Version:     42 (store st-1)
Resources:   9
Last error:  <none>

FRONTEND              SERVICE         SCOPE      AFFINITY         MAGLEV    BACKENDS           WEIGHT    STATE
198.18.64.10:80/TCP   shop/web:http   internal   ClientIP(600s)   65537     198.19.4.10:8080   1         serving,local
                                                                            198.19.4.11:8080   3         serving,terminating
*:30080/TCP           shop/web:http   external   -                65537     <none>             -         -

SEGMENT   VNI       CIDRS           GATEWAY
shop      7         198.19.4.0/24   198.19.4.1

ROUTE            NODE      UNDERLAY     VNI
198.19.4.64/26   h2        198.18.0.2   7

POD          ADDRESS       MAC                 HOST INTERFACE
shop/web-1   198.19.4.10   0a:58:c6:13:04:0a   atl0123456789a (12)

Packets:     packets 1200, new_flows 30
Drops:       spoofed 3, isolated 1
)");
  EXPECT_THAT(RenderAgentState(state, OutputFormat::kYaml), HasSubstr("maglevSize: 65537"));
  EXPECT_THAT(RenderAgentState(state, OutputFormat::kJson), HasSubstr("\"hostIfname\""));
}

TEST(RenderAgentState, CountersOnlyWhenTheDataplaneHasThem) {
  auto quiet = FromText<api::AgentStateResponse>(R"pb(
    dataplane: "dpdk"
    packets { name: "packets" value: 0 }
    drops { name: "malformed" value: 0 })pb");
  EXPECT_THAT(RenderAgentState(quiet, OutputFormat::kTable),
              HasSubstr("\nPackets:     packets 0\nDrops:       none\n"));
  auto in_process = FromText<api::AgentStateResponse>(R"pb(dataplane: "in-process")pb");
  EXPECT_THAT(RenderAgentState(in_process, OutputFormat::kTable), Not(HasSubstr("Drops:")));
}

TEST(ParseOutputFormat, Names) {
  EXPECT_EQ(*ParseOutputFormat(""), OutputFormat::kTable);
  EXPECT_EQ(*ParseOutputFormat("wide"), OutputFormat::kWide);
  EXPECT_EQ(*ParseOutputFormat("json"), OutputFormat::kJson);
  EXPECT_EQ(*ParseOutputFormat("yaml"), OutputFormat::kYaml);
  EXPECT_EQ(ParseOutputFormat("xml").status().message(),
            "unknown output format \"xml\": one of json, yaml, wide");
}

}  // namespace
}  // namespace atl::ctl
