#include "cni-plugin/plugin.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace atl::cni {
namespace {

namespace api = ::atl::api::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Env = std::map<std::string, std::string>;

// Stands in for the agent: records what it was asked and answers as told.
class FakeAgent final : public AgentClient {
 public:
  grpc::Status answer = grpc::Status::OK;
  api::CniAddResponse add_response;
  std::vector<api::PodAttachment> attachments;
  std::vector<std::string> checked_addresses;
  std::vector<api::PodAttachment> gc_valid;
  std::string socket;
  uint32_t timeout_ms = 0;

  grpc::Status Add(const api::CniAddRequest& req, api::CniAddResponse& resp) override {
    attachments.push_back(req.attachment());
    if (answer.ok()) resp = add_response;
    return answer;
  }
  grpc::Status Del(const api::CniDelRequest& req, api::CniDelResponse&) override {
    attachments.push_back(req.attachment());
    return answer;
  }
  grpc::Status Check(const api::CniCheckRequest& req) override {
    attachments.push_back(req.attachment());
    checked_addresses.assign(req.addresses().begin(), req.addresses().end());
    return answer;
  }
  grpc::Status Gc(const api::CniGcRequest& req, api::CniGcResponse&) override {
    gc_valid.assign(req.valid().begin(), req.valid().end());
    return answer;
  }
  grpc::Status Status() override { return answer; }
};

class PluginTest : public ::testing::Test {
 protected:
  PluginTest() {
    agent_.add_response.set_host_ifname("atl0123456789a");
    agent_.add_response.set_host_mac("ee:ee:ee:00:00:01");
    agent_.add_response.set_pod_mac("0a:58:c6:13:00:05");
    agent_.add_response.set_address("198.19.0.5/24");
    agent_.add_response.set_gateway("198.19.0.1");
    agent_.add_response.set_mtu(1450);
  }

  Outcome RunWith(const Env& env, const std::string& conf) {
    connected_ = false;
    return ::atl::cni::Run(
        [&](const char* name) -> const char* {
          auto it = env.find(name);
          return it == env.end() ? nullptr : it->second.c_str();
        },
        conf,
        [&](const std::string& socket, uint32_t timeout_ms) -> AgentClient& {
          connected_ = true;
          agent_.socket = socket;
          agent_.timeout_ms = timeout_ms;
          return agent_;
        });
  }

  static Env Command(const std::string& command) {
    return {{"CNI_COMMAND", command},
            {"CNI_CONTAINERID", "c0ffee"},
            {"CNI_NETNS", "/run/netns/p1"},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/usr/lib/cni"},
            {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1"}};
  }

  static std::string Conf(const std::string& version, const std::string& extra = "") {
    return R"({"cniVersion":")" + version +
           R"(","name":"atoll","type":"atoll-cni","socket":"/tmp/a.sock","timeoutMs":250)" + extra +
           "}";
  }

  static nlohmann::json Json(const Outcome& o) { return nlohmann::json::parse(o.output); }

  FakeAgent agent_;
  bool connected_ = false;
};

TEST_F(PluginTest, AddReturnsTheResultInTheConfigsVersion) {
  for (std::string_view version : kSupportedVersions) {
    SCOPED_TRACE(version);
    const Outcome out = RunWith(Command("ADD"), Conf(std::string(version)));
    ASSERT_EQ(out.exit_code, 0) << out.output;
    const nlohmann::json result = Json(out);
    EXPECT_EQ(result["cniVersion"], version);
    ASSERT_EQ(result["interfaces"].size(), 2u);
    EXPECT_EQ(result["interfaces"][0]["name"], "atl0123456789a");
    EXPECT_FALSE(result["interfaces"][0].contains("sandbox"));
    EXPECT_EQ(result["interfaces"][1],
              (nlohmann::json{
                  {"name", "eth0"}, {"mac", "0a:58:c6:13:00:05"}, {"sandbox", "/run/netns/p1"}}));
    ASSERT_EQ(result["ips"].size(), 1u);
    EXPECT_EQ(result["ips"][0]["address"], "198.19.0.5/24");
    EXPECT_EQ(result["ips"][0]["gateway"], "198.19.0.1");
    EXPECT_EQ(result["ips"][0]["interface"], 1);
    EXPECT_EQ(result["ips"][0].contains("version"), version.starts_with("0."));
    EXPECT_EQ(result["routes"][0], (nlohmann::json{{"dst", "0.0.0.0/0"}, {"gw", "198.19.0.1"}}));
  }
  EXPECT_EQ(agent_.socket, "/tmp/a.sock");
  EXPECT_EQ(agent_.timeout_ms, 250u);
}

TEST_F(PluginTest, AddSendsThePodFromArgsOrTheDefaultNamespace) {
  ASSERT_EQ(RunWith(Command("ADD"), Conf("1.0.0")).exit_code, 0);
  // podman sends only the pod name.
  Env podman = Command("ADD");
  podman["CNI_ARGS"] = "IgnoreUnknown=1;K8S_POD_NAME=rcl-pod1";
  ASSERT_EQ(RunWith(podman, Conf("1.0.0", R"(,"defaultNamespace":"blog")")).exit_code, 0);

  ASSERT_EQ(agent_.attachments.size(), 2u);
  EXPECT_EQ(agent_.attachments[0].container_id(), "c0ffee");
  EXPECT_EQ(agent_.attachments[0].ifname(), "eth0");
  EXPECT_EQ(agent_.attachments[0].netns(), "/run/netns/p1");
  EXPECT_EQ(agent_.attachments[0].pod_namespace(), "shop");
  EXPECT_EQ(agent_.attachments[0].pod_name(), "web-1");
  EXPECT_EQ(agent_.attachments[1].pod_namespace(), "blog");
  EXPECT_EQ(agent_.attachments[1].pod_name(), "rcl-pod1");
}

TEST_F(PluginTest, ChainedAddKeepsThePreviousResultFirst) {
  const std::string prev =
      R"(,"prevResult":{"cniVersion":"0.4.0","interfaces":[{"name":"net1","sandbox":"/run/netns/p1"}],
         "ips":[{"version":"4","address":"198.18.48.2/24","interface":0}],
         "dns":{"nameservers":["198.18.64.10"]}})";
  const Outcome out = RunWith(Command("ADD"), Conf("0.4.0", prev));
  ASSERT_EQ(out.exit_code, 0) << out.output;
  const nlohmann::json result = Json(out);
  ASSERT_EQ(result["interfaces"].size(), 3u);
  EXPECT_EQ(result["interfaces"][0]["name"], "net1");
  EXPECT_EQ(result["interfaces"][2]["name"], "eth0");
  ASSERT_EQ(result["ips"].size(), 2u);
  EXPECT_EQ(result["ips"][0]["address"], "198.18.48.2/24");
  EXPECT_EQ(result["ips"][1]["address"], "198.19.0.5/24");
  EXPECT_EQ(result["ips"][1]["interface"], 2);
  EXPECT_EQ(result["dns"]["nameservers"][0], "198.18.64.10");
}

TEST_F(PluginTest, AgentAnswersBecomeCniCodes) {
  struct Case {
    grpc::Status answer;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      // No agent on the socket: gRPC fails the call at once.
      {{grpc::StatusCode::UNAVAILABLE, "connect: No such file or directory"},
       11,
       "atoll-agent at unix:/tmp/a.sock cannot serve it now"},
      {{grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded"}, 11, "cannot serve it now"},
      // The agent has not heard of the namespace yet.
      {{grpc::StatusCode::UNAVAILABLE, "namespace \"shop\" is not known to this agent (yet)"},
       11,
       "cannot serve it now"},
      {{grpc::StatusCode::RESOURCE_EXHAUSTED, "the pod CIDR has no free /24 left"},
       101,
       "ADD: the pod CIDR has no free /24 left"},
      {{grpc::StatusCode::FAILED_PRECONDITION, "eth0 already exists in /run/netns/p1"},
       100,
       "ADD: eth0 already exists"},
      {{grpc::StatusCode::INVALID_ARGUMENT, "attachment.netns is empty"},
       100,
       "attachment.netns is empty"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.answer.error_message());
    agent_.answer = c.answer;
    const Outcome out = RunWith(Command("ADD"), Conf("1.0.0"));
    EXPECT_EQ(out.exit_code, 1);
    const nlohmann::json error = Json(out);
    EXPECT_EQ(error["cniVersion"], "1.0.0");
    EXPECT_EQ(error["code"], c.code);
    EXPECT_THAT(error["msg"].get<std::string>(), HasSubstr(c.says));
  }
  // An unreachable agent's own words go to details.
  agent_.answer = {grpc::StatusCode::UNAVAILABLE, "connect: No such file or directory"};
  EXPECT_THAT(Json(RunWith(Command("DEL"), Conf("1.0.0")))["details"].get<std::string>(),
              HasSubstr("No such file"));
}

TEST_F(PluginTest, BadInputIsReportedWithoutAskingTheAgent) {
  struct Case {
    std::string label;
    Env env;
    std::string conf;
    int code;
    std::string says;
  };
  Env no_netns = Command("ADD");
  no_netns.erase("CNI_NETNS");
  Env unknown_arg = Command("ADD");
  unknown_arg["CNI_ARGS"] = "K8S_POD_NAME=a;COLOUR=blue";
  const std::vector<Case> cases = {
      {"bad JSON", Command("ADD"), R"({"cniVersion":"1.0.0",)", 6, "not valid JSON"},
      {"missing env", no_netns, Conf("1.0.0"), 4, "CNI_NETNS"},
      {"unknown CNI_ARGS key", unknown_arg, Conf("1.0.0"), 4, "COLOUR"},
      {"unknown version", Command("ADD"), Conf("0.2.0"), 1, "unsupported cniVersion \"0.2.0\""},
      {"missing name", Command("ADD"), R"({"cniVersion":"1.0.0","type":"atoll-cni"})", 7,
       "\"name\""},
      {"bad timeout", Command("ADD"), Conf("1.0.0", R"(,"timeoutMs":0)"), 7, "timeoutMs"},
      {"bad prevResult", Command("ADD"), Conf("1.0.0", R"(,"prevResult":{"ips":{}})"), 7,
       "prevResult.ips"},
      {"CHECK before 0.4.0", Command("CHECK"), Conf("0.3.1"), 1, "does not allow CHECK"},
      {"CHECK without prevResult", Command("CHECK"), Conf("1.0.0"), 7, "no prevResult"},
      {"GC before 1.1.0", Command("GC"), Conf("1.0.0"), 1, "does not allow GC"},
      {"STATUS before 1.1.0", Command("STATUS"), Conf("0.4.0"), 1, "does not allow STATUS"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    const Outcome out = RunWith(c.env, c.conf);
    EXPECT_EQ(out.exit_code, 1);
    const nlohmann::json error = Json(out);
    EXPECT_EQ(error["code"], c.code);
    EXPECT_THAT(error["msg"].get<std::string>(), HasSubstr(c.says));
    EXPECT_FALSE(connected_);
  }
}

TEST_F(PluginTest, VersionNeedsNoAgent) {
  // podman's VERSION call: dummy values and a config holding only the version.
  Env env = {{"CNI_COMMAND", "VERSION"}, {"CNI_NETNS", "dummy"}, {"CNI_IFNAME", "dummy"}};
  Outcome out = RunWith(env, R"({"cniVersion":"0.4.0"})");
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_EQ(Json(out)["cniVersion"], "0.4.0");
  EXPECT_THAT(Json(out)["supportedVersions"],
              ElementsAre("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"));
  out = RunWith(env, "");
  ASSERT_EQ(out.exit_code, 0);
  EXPECT_EQ(Json(out)["cniVersion"], "1.1.0");
  EXPECT_FALSE(connected_);
}

TEST_F(PluginTest, DelWorksWithoutNetnsAndPrintsNothing) {
  Env env = Command("DEL");
  env.erase("CNI_NETNS");  // containerd's second DEL
  const Outcome out = RunWith(env, Conf("1.0.0"));
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_EQ(out.output, "");
  ASSERT_EQ(agent_.attachments.size(), 1u);
  EXPECT_EQ(agent_.attachments[0].netns(), "");
  EXPECT_EQ(agent_.attachments[0].container_id(), "c0ffee");
}

TEST_F(PluginTest, CheckSendsTheAddressesOfItsOwnInterface) {
  const std::string prev =
      R"(,"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"atl0123456789a"},
         {"name":"eth0","sandbox":"/run/netns/p1"},{"name":"net1","sandbox":"/run/netns/p1"}],
         "ips":[{"address":"198.19.0.5/24","interface":1},{"address":"198.18.48.9/24","interface":2}]})";
  Outcome out = RunWith(Command("CHECK"), Conf("1.0.0", prev));
  EXPECT_EQ(out.exit_code, 0) << out.output;
  EXPECT_THAT(agent_.checked_addresses, ElementsAre("198.19.0.5/24"));

  agent_.answer = {grpc::StatusCode::NOT_FOUND, "container c0ffee interface eth0 has no address"};
  out = RunWith(Command("CHECK"), Conf("1.0.0", prev));
  EXPECT_EQ(Json(out)["code"], CniError::kUnknownContainer);
  agent_.answer = {grpc::StatusCode::FAILED_PRECONDITION, "eth0 in /run/netns/p1 has MTU 1500"};
  out = RunWith(Command("CHECK"), Conf("1.0.0", prev));
  EXPECT_EQ(Json(out)["code"], CniError::kAgentRefused);
  EXPECT_THAT(Json(out)["msg"].get<std::string>(), HasSubstr("has MTU 1500"));
}

TEST_F(PluginTest, GcSendsTheValidAttachments) {
  Env env = {{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/usr/lib/cni"}};
  const Outcome out = RunWith(
      env, Conf("1.1.0", R"(,"cni.dev/valid-attachments":[{"containerID":"a1","ifname":"eth0"}])"));
  EXPECT_EQ(out.exit_code, 0) << out.output;
  ASSERT_EQ(agent_.gc_valid.size(), 1u);
  EXPECT_EQ(agent_.gc_valid[0].container_id(), "a1");
  EXPECT_EQ(agent_.gc_valid[0].ifname(), "eth0");
}

TEST_F(PluginTest, StatusReportsCode50WhenTheAgentCannotServe) {
  Env env = {{"CNI_COMMAND", "STATUS"}, {"CNI_PATH", "/usr/lib/cni"}};
  EXPECT_EQ(RunWith(env, Conf("1.1.0")).exit_code, 0);
  agent_.answer = {grpc::StatusCode::UNAVAILABLE, "no state from the controller yet"};
  const Outcome out = RunWith(env, Conf("1.1.0"));
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(Json(out)["code"], CniError::kNotAvailable);
}

}  // namespace
}  // namespace atl::cni
