#include "atollctl/manifest.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <string>

namespace atl::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

api::Resource FromText(const std::string& text) {
  api::Resource resource;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &resource)) << text;
  return resource;
}

MATCHER_P(EqualsProto, expected, "") {
  std::string diff;
  google::protobuf::util::MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  if (differencer.Compare(expected, arg)) return true;
  *result_listener << diff << "\ngot: " << arg.ShortDebugString();
  return false;
}

std::vector<api::Resource> ParseOk(std::string_view text, std::string_view ns = "default") {
  absl::StatusOr<std::vector<api::Resource>> parsed = ParseManifests(text, "test.yaml", ns);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : std::vector<api::Resource>{};
}

std::string ParseError(std::string_view text, std::string_view source = "web.yaml") {
  absl::StatusOr<std::vector<api::Resource>> parsed = ParseManifests(text, source, "default");
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(ParseManifests, Namespace) {
  auto resources = ParseOk(R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    team: payments
  annotations:
    atoll.io/isolation: isolated
    atoll.io/admitted-namespaces: "monitoring, ingress"
    atoll.io/egress-ip: 198.18.16.10
    atoll.io/cidr: 198.19.4.0/24
    kubectl.kubernetes.io/last-applied-configuration: "{}"
spec:
  finalizers: [kubernetes]
status:
  phase: Active
)");
  EXPECT_THAT(resources, ElementsAre(EqualsProto(FromText(R"pb(
                namespace {
                  name: "shop"
                  isolation: ISOLATION_ISOLATED
                  admitted_namespaces: [ "monitoring", "ingress" ]
                  egress_ip: "198.18.16.10"
                  cidr: "198.19.4.0/24"
                })pb"))));
}

TEST(ParseManifests, NamespaceWithoutAnnotationsLeavesDefaultsToTheController) {
  auto resources = ParseOk("apiVersion: v1\nkind: Namespace\nmetadata: {name: open-ns}\n");
  EXPECT_THAT(resources,
              ElementsAre(EqualsProto(FromText(R"pb(namespace { name: "open-ns" })pb"))));
}

TEST(ParseManifests, ServiceAsKubectlUsersWriteIt) {
  auto resources = ParseOk(R"(# The shop's front end.
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  uid: 6d1c1b1e-1f0b-4b8e-9d0e-3f7d8c2a9b10
  resourceVersion: "4711"
  labels:
    app: web
spec:
  type: LoadBalancer
  selector:
    app: web
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  clusterIP: 198.18.64.10
  clusterIPs:
  - 198.18.64.10
  ports:
  - name: http
    protocol: TCP
    port: 80
    targetPort: 8080
    nodePort: 30080
  - name: metrics
    port: 9090
    targetPort: metrics
  - name: dns
    protocol: UDP
    port: 53
    targetPort: "5353"
  sessionAffinity: ClientIP
  sessionAffinityConfig:
    clientIP:
      timeoutSeconds: 600
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  externalIPs:
  - 198.18.16.20
  loadBalancerIP: 198.18.16.30
status:
  loadBalancer:
    ingress:
    - ip: 198.18.16.30
    - ip: 198.18.16.31
)");
  EXPECT_THAT(resources, ElementsAre(EqualsProto(FromText(R"pb(
                service {
                  namespace: "shop"
                  name: "web"
                  type: SERVICE_TYPE_LOAD_BALANCER
                  cluster_ips: "198.18.64.10"
                  ports {
                    name: "http"
                    protocol: PROTOCOL_TCP
                    port: 80
                    target_port: "8080"
                    node_port: 30080
                  }
                  ports { name: "metrics" port: 9090 target_port: "metrics" }
                  ports { name: "dns" protocol: PROTOCOL_UDP port: 53 target_port: "5353" }
                  session_affinity: SESSION_AFFINITY_CLIENT_IP
                  session_affinity_timeout_seconds: 600
                  external_traffic_policy: TRAFFIC_POLICY_LOCAL
                  internal_traffic_policy: TRAFFIC_POLICY_CLUSTER
                  external_ips: "198.18.16.20"
                  load_balancer_ips: [ "198.18.16.30", "198.18.16.31" ]
                })pb"))));
}

TEST(ParseManifests, ServiceDefaultsToTheGivenNamespace) {
  auto resources = ParseOk(R"(apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
)",
                           "shop");
  EXPECT_THAT(resources, ElementsAre(EqualsProto(FromText(R"pb(
                service {
                  namespace: "shop"
                  name: "web"
                  ports { port: 80 }
                })pb"))));
}

TEST(ParseManifests, HeadlessAndDualStackClusterIps) {
  auto resources = ParseOk(R"(apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
---
apiVersion: v1
kind: Service
metadata: {name: dual}
spec:
  clusterIPs: [198.18.64.11, "fd00:a70:ffff::11"]
)");
  EXPECT_THAT(
      resources,
      ElementsAre(EqualsProto(FromText(
                      R"pb(service { namespace: "default" name: "db" cluster_ips: "None" })pb")),
                  EqualsProto(FromText(R"pb(service {
                                              namespace: "default"
                                              name: "dual"
                                              cluster_ips: [ "198.18.64.11", "fd00:a70:ffff::11" ]
                                            })pb"))));
}

TEST(ParseManifests, EndpointSlice) {
  auto resources = ParseOk(R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc12
  namespace: shop
  labels:
    kubernetes.io/service-name: web
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
  annotations:
    atoll.io/endpoint-weights: "198.19.4.11=3"
  ownerReferences:
  - apiVersion: v1
    kind: Service
    name: web
    uid: 6d1c1b1e-1f0b-4b8e-9d0e-3f7d8c2a9b10
addressType: IPv4
endpoints:
- addresses: ["198.19.4.10"]
  conditions:
    ready: true
    serving: true
    terminating: false
  nodeName: h1
  zone: zone-a
  targetRef:
    kind: Pod
    name: web-7d9f-x1
    namespace: shop
- addresses:
  - 198.19.4.11
  conditions: {ready: false, serving: yes, terminating: True}
  nodeName: h2
- addresses: [198.19.4.12]
ports:
- name: http
  protocol: TCP
  port: 8080
  appProtocol: http
)");
  EXPECT_THAT(resources, ElementsAre(EqualsProto(FromText(R"pb(
                endpoint_slice {
                  namespace: "shop"
                  name: "web-abc12"
                  service_name: "web"
                  address_type: ADDRESS_TYPE_IPV4
                  endpoints {
                    addresses: "198.19.4.10"
                    conditions { ready: true serving: true terminating: false }
                    node_name: "h1"
                    zone: "zone-a"
                  }
                  endpoints {
                    addresses: "198.19.4.11"
                    conditions { ready: false serving: true terminating: true }
                    node_name: "h2"
                    weight: 3
                  }
                  endpoints { addresses: "198.19.4.12" }
                  ports { name: "http" protocol: PROTOCOL_TCP port: 8080 }
                })pb"))));
  // Unset conditions stay unset: the controller reads them as Kubernetes does.
  EXPECT_FALSE(resources[0].endpoint_slice().endpoints(2).conditions().has_ready());
}

TEST(ParseManifests, Node) {
  auto resources = ParseOk(R"(apiVersion: v1
kind: Node
metadata:
  name: h1
  labels:
    kubernetes.io/hostname: h1
spec:
  podCIDR: 198.19.0.0/24
  taints: []
status:
  addresses:
  - type: Hostname
    address: h1
  - type: InternalIP
    address: 198.18.0.1
  capacity:
    cpu: "4"
---
apiVersion: v1
kind: Node
metadata:
  name: h2
  annotations:
    atoll.io/underlay-address: 198.18.0.2
status:
  addresses:
  - type: InternalIP
    address: 198.18.0.99
)");
  EXPECT_THAT(
      resources,
      ElementsAre(
          EqualsProto(FromText(R"pb(node { name: "h1" underlay_address: "198.18.0.1" })pb")),
          EqualsProto(FromText(R"pb(node { name: "h2" underlay_address: "198.18.0.2" })pb"))));
}

TEST(ParseManifests, MultipleDocumentsInOrderSkippingEmptyOnes) {
  auto resources = ParseOk(R"(---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
# nothing here
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - port: 80
---
)");
  ASSERT_EQ(resources.size(), 2u);
  EXPECT_EQ(resources[0].namespace_().name(), "shop");
  EXPECT_EQ(resources[1].service().name(), "web");
}

TEST(ParseManifests, Json) {
  auto resources = ParseOk(R"({
	"apiVersion": "v1",
	"kind": "Service",
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": {
		"type": "NodePort",
		"ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}],
		"sessionAffinity": null
	}
})");
  EXPECT_THAT(resources, ElementsAre(EqualsProto(FromText(R"pb(
                service {
                  namespace: "shop"
                  name: "web"
                  type: SERVICE_TYPE_NODE_PORT
                  ports { name: "http" port: 80 target_port: "8080" node_port: 30080 }
                })pb"))));
}

TEST(ParseManifests, List) {
  auto resources = ParseOk(R"(apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
- apiVersion: v1
  kind: Node
  metadata:
    name: h1
)");
  ASSERT_EQ(resources.size(), 2u);
  EXPECT_EQ(resources[0].namespace_().name(), "shop");
  EXPECT_EQ(resources[1].node().name(), "h1");
}

TEST(ParseManifests, NothingButComments) {
  EXPECT_TRUE(ParseOk("# empty\n").empty());
  EXPECT_TRUE(ParseOk("").empty());
}

// --- Errors: each names the source, document, object, field, value and line.

TEST(ParseManifestsError, NotANumber) {
  EXPECT_EQ(ParseError(R"(apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  ports:
  - name: http
    port: http
    targetPort: 8080
)"),
            "web.yaml: document 2 (Service \"shop/web\"): spec.ports[0].port: \"http\" is not a "
            "number (line 14)");
}

TEST(ParseManifestsError, QuotedNumberIsAString) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  ports:\n  - port: \"80\"\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.ports[0].port: \"80\" is a "
            "string, not a number (line 6)");
}

TEST(ParseManifestsError, NumberOutOfRange) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  ports:\n  - port: -1\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.ports[0].port: \"-1\" is out "
            "of range (0 to 2147483647) (line 6)");
}

TEST(ParseManifestsError, UnknownSpecField) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n"
                       "spec:\n  portz:\n  - port: 80\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.portz: unknown field (line 6)");
}

TEST(ParseManifestsError, UnknownNestedField) {
  EXPECT_EQ(ParseError("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata: {name: web-1, namespace: shop}\naddressType: IPv4\n"
                       "endpoints:\n- addresses: [198.19.4.10]\n  condition: {ready: true}\n"),
            "web.yaml: document 1 (EndpointSlice \"shop/web-1\"): endpoints[0].condition: "
            "unknown field (line 7)");
}

TEST(ParseManifestsError, DuplicateField) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  type: NodePort\n  type: ClusterIP\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.type: duplicate field (line 6)");
}

TEST(ParseManifestsError, EnumListsTheAllowedSpellings) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  type: Cluster\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.type: \"Cluster\" is not one "
            "of ClusterIP, NodePort, LoadBalancer (line 5)");
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  ports:\n  - port: 80\n    protocol: tcp\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.ports[0].protocol: \"tcp\" is "
            "not one of TCP, UDP, SCTP (line 7)");
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  externalTrafficPolicy: local\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.externalTrafficPolicy: "
            "\"local\" is not one of Cluster, Local (line 5)");
  EXPECT_EQ(ParseError("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata: {name: s}\naddressType: FQDN\n"),
            "web.yaml: document 1 (EndpointSlice \"default/s\"): addressType: \"FQDN\" is not "
            "one of IPv4, IPv6 (line 4)");
}

TEST(ParseManifestsError, IsolationAnnotation) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
                       "  annotations:\n    atoll.io/isolation: closed\n"),
            "web.yaml: document 1 (Namespace \"shop\"): "
            "metadata.annotations[\"atoll.io/isolation\"]: \"closed\" is not one of isolated, "
            "open (line 6)");
}

TEST(ParseManifestsError, MistypedAtollAnnotation) {
  EXPECT_THAT(ParseError("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
                         "  annotations:\n    atoll.io/isolaton: open\n"),
              HasSubstr("metadata.annotations[\"atoll.io/isolaton\"]: unknown annotation; "
                        "Namespace takes atoll.io/isolation, "));
}

TEST(ParseManifestsError, UnknownKind) {
  EXPECT_EQ(ParseError("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"),
            "web.yaml: document 1: kind: \"Deployment\" is not a kind Atoll knows (Namespace, "
            "Service, EndpointSlice, Node, Segment, List) (line 2)");
}

TEST(ParseManifestsError, WrongApiVersion) {
  EXPECT_EQ(ParseError("apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\n"
                       "metadata: {name: s}\n"),
            "web.yaml: document 1 (EndpointSlice): apiVersion: \"discovery.k8s.io/v1beta1\" is "
            "not the API version of EndpointSlice (discovery.k8s.io/v1) (line 1)");
}

TEST(ParseManifestsError, MissingKindAndName) {
  EXPECT_EQ(ParseError("apiVersion: v1\nmetadata: {name: web}\n"),
            "web.yaml: document 1: kind: missing (line 1)");
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata:\n  generateName: web-\n"),
            "web.yaml: document 1 (Service): metadata.name: missing (generateName is not "
            "supported: Atoll needs the name) (line 4)");
}

TEST(ParseManifestsError, WrongShape) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  ports:\n    port: 80\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.ports: expected a list, got a "
            "mapping (line 6)");
  EXPECT_EQ(ParseError("- a\n- b\n"),
            "web.yaml: document 1: expected a mapping, got a list (line 1)");
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  externalIPs: [[198.18.16.1]]\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.externalIPs[0]: expected a "
            "string, got a list (line 5)");
}

TEST(ParseManifestsError, Bool) {
  EXPECT_EQ(ParseError("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata: {name: s}\nendpoints:\n- addresses: [198.19.4.10]\n"
                       "  conditions:\n    ready: maybe\n"),
            "web.yaml: document 1 (EndpointSlice \"default/s\"): endpoints[0].conditions.ready: "
            "\"maybe\" is not true or false (line 7)");
}

TEST(ParseManifestsError, ClusterIpDisagreesWithClusterIps) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                       "spec:\n  clusterIP: 198.18.64.1\n  clusterIPs: [198.18.64.2]\n"),
            "web.yaml: document 1 (Service \"default/web\"): spec.clusterIP: \"198.18.64.1\" "
            "differs from spec.clusterIPs[0] \"198.18.64.2\" (line 5)");
}

TEST(ParseManifestsError, InListItemNamesTheItem) {
  EXPECT_EQ(ParseError(R"(apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: shop}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec:
    sessionAffinity: Sticky
)"),
            "web.yaml: document 1 (Service \"shop/web\"): items[1].spec.sessionAffinity: "
            "\"Sticky\" is not one of None, ClientIP (line 11)");
}

TEST(ParseManifestsError, EndpointWeightForAnUnknownAddress) {
  EXPECT_EQ(ParseError("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata:\n  name: s\n  annotations:\n"
                       "    atoll.io/endpoint-weights: 198.19.4.99=2\n"
                       "endpoints:\n- addresses: [198.19.4.10]\n"),
            "web.yaml: document 1 (EndpointSlice \"default/s\"): "
            "metadata.annotations[\"atoll.io/endpoint-weights\"]: no endpoint has the address "
            "\"198.19.4.99\" (line 6)");
}

TEST(ParseManifestsError, YamlSyntaxNamesTheDocument) {
  EXPECT_EQ(ParseError("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                       "apiVersion: v1\nkind: Namespace\nmetadata: {name: [b}\n",
                       "ns.yaml"),
            "ns.yaml: document 2: invalid YAML: illegal flow end (line 7, column 20)");
}

}  // namespace
}  // namespace atl::ctl
