#include "cni-plugin/spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <variant>
#include <vector>

namespace atl::cni {
namespace {

using ::testing::HasSubstr;
using Env = std::map<std::string, std::string>;

CniResult<Environment> Parse(const Env& vars) {
  return ParseEnvironment([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

Env With(Env base, const Env& changes) {
  for (const auto& [key, value] : changes) base[key] = value;
  return base;
}

Env Without(Env base, const std::string& key) {
  base.erase(key);
  return base;
}

const Env kAdd = {{"CNI_COMMAND", "ADD"},
                  {"CNI_CONTAINERID", "abc123"},
                  {"CNI_NETNS", "/var/run/netns/cni-1"},
                  {"CNI_IFNAME", "eth0"},
                  {"CNI_PATH", "/opt/cni/bin"}};

// --- Environment ---------------------------------------------------------

struct EnvOk {
  std::string label;
  Env vars;
  Command command;
};

TEST(ParseEnvironment, AcceptsEachCommandWithItsRequiredVariables) {
  const EnvOk cases[] = {
      {"add", kAdd, Command::kAdd},
      {"check", With(kAdd, {{"CNI_COMMAND", "CHECK"}}), Command::kCheck},
      {"del", With(kAdd, {{"CNI_COMMAND", "DEL"}}), Command::kDel},
      {"del without netns", Without(With(kAdd, {{"CNI_COMMAND", "DEL"}}), "CNI_NETNS"),
       Command::kDel},
      {"del with empty netns", With(kAdd, {{"CNI_COMMAND", "DEL"}, {"CNI_NETNS", ""}}),
       Command::kDel},
      {"gc", {{"CNI_COMMAND", "GC"}}, Command::kGc},
      {"status", {{"CNI_COMMAND", "STATUS"}}, Command::kStatus},
      {"version", {{"CNI_COMMAND", "VERSION"}}, Command::kVersion},
      {"container id with _.-", With(kAdd, {{"CNI_CONTAINERID", "A1_b.c-d"}}), Command::kAdd},
      {"15-byte ifname", With(kAdd, {{"CNI_IFNAME", "abcdefghijklmno"}}), Command::kAdd},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto env = Parse(c.vars);
    const CniError* error = std::get_if<CniError>(&env);
    ASSERT_EQ(error, nullptr) << error->msg;
    EXPECT_EQ(std::get<Environment>(env).command, c.command);
    EXPECT_EQ(CommandName(c.command), c.vars.at("CNI_COMMAND"));
  }
}

TEST(ParseEnvironment, KeepsTheValues) {
  auto env = Parse(With(kAdd, {{"CNI_ARGS", "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0"}}));
  ASSERT_TRUE(std::holds_alternative<Environment>(env));
  const Environment& e = std::get<Environment>(env);
  EXPECT_EQ(e.container_id, "abc123");
  EXPECT_EQ(e.netns, "/var/run/netns/cni-1");
  EXPECT_EQ(e.ifname, "eth0");
  EXPECT_EQ(e.path, "/opt/cni/bin");
  EXPECT_EQ(e.args, (std::map<std::string, std::string>{{"K8S_POD_NAMESPACE", "shop"},
                                                        {"K8S_POD_NAME", "web-0"}}));
}

struct EnvBad {
  std::string label;
  Env vars;
  std::string message;  // A part of the message: what and which value.
};

TEST(ParseEnvironment, RejectsWithCode4NamingTheCulprit) {
  const Env del = With(kAdd, {{"CNI_COMMAND", "DEL"}});
  const Env check = With(kAdd, {{"CNI_COMMAND", "CHECK"}});
  const EnvBad cases[] = {
      {"no command", {}, "CNI_COMMAND is not set"},
      {"empty command", {{"CNI_COMMAND", ""}}, "CNI_COMMAND is not set"},
      {"unknown command", {{"CNI_COMMAND", "add"}}, "unknown CNI_COMMAND \"add\""},
      {"add no container", Without(kAdd, "CNI_CONTAINERID"), "CNI_CONTAINERID is not set"},
      {"add no netns", Without(kAdd, "CNI_NETNS"), "CNI_NETNS is not set"},
      {"add empty netns", With(kAdd, {{"CNI_NETNS", ""}}), "CNI_NETNS is not set"},
      {"add no ifname", Without(kAdd, "CNI_IFNAME"), "CNI_IFNAME is not set"},
      {"check no container", Without(check, "CNI_CONTAINERID"), "CNI_CONTAINERID is not set"},
      {"check no netns", Without(check, "CNI_NETNS"), "CNI_NETNS is not set"},
      {"check no ifname", Without(check, "CNI_IFNAME"), "CNI_IFNAME is not set"},
      {"del no container", Without(del, "CNI_CONTAINERID"), "CNI_CONTAINERID is not set"},
      {"del no ifname", Without(del, "CNI_IFNAME"), "CNI_IFNAME is not set"},
      {"container id starts with _", With(kAdd, {{"CNI_CONTAINERID", "_abc"}}),
       "invalid CNI_CONTAINERID \"_abc\""},
      {"container id with /", With(kAdd, {{"CNI_CONTAINERID", "a/b"}}),
       "invalid CNI_CONTAINERID \"a/b\""},
      {"container id with space", With(kAdd, {{"CNI_CONTAINERID", "a b"}}),
       "invalid CNI_CONTAINERID \"a b\""},
      {"16-byte ifname", With(kAdd, {{"CNI_IFNAME", "abcdefghijklmnop"}}),
       "invalid CNI_IFNAME \"abcdefghijklmnop\""},
      {"ifname .", With(kAdd, {{"CNI_IFNAME", "."}}), "invalid CNI_IFNAME \".\""},
      {"ifname ..", With(kAdd, {{"CNI_IFNAME", ".."}}), "invalid CNI_IFNAME \"..\""},
      {"ifname /", With(kAdd, {{"CNI_IFNAME", "a/b"}}), "invalid CNI_IFNAME \"a/b\""},
      {"ifname :", With(kAdd, {{"CNI_IFNAME", "eth0:1"}}), "invalid CNI_IFNAME \"eth0:1\""},
      {"ifname tab", With(kAdd, {{"CNI_IFNAME", "eth\t0"}}), "invalid CNI_IFNAME \"eth\\t0\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto env = Parse(c.vars);
    ASSERT_TRUE(std::holds_alternative<CniError>(env));
    const CniError& error = std::get<CniError>(env);
    EXPECT_EQ(error.code, CniError::kInvalidEnvironment);
    EXPECT_THAT(error.msg, HasSubstr(c.message));
  }
}

// --- CNI_ARGS ------------------------------------------------------------

struct ArgsCase {
  std::string label;
  std::string args;
  std::map<std::string, std::string> want;  // Empty with error set.
  std::string error;                        // A part of the code-4 message.
};

TEST(ParseEnvironment, ParsesCniArgs) {
  const std::string kubelet =
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"
      "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e";
  const ArgsCase cases[] = {
      {"empty", "", {}, ""},
      {"kubelet",
       kubelet,
       {{"IgnoreUnknown", "1"},
        {"K8S_POD_NAMESPACE", "shop"},
        {"K8S_POD_NAME", "web-0"},
        {"K8S_POD_INFRA_CONTAINER_ID", "abc123"},
        {"K8S_POD_UID", "0f1e"}},
       ""},
      {"trailing ;", "K8S_POD_NAME=a;", {{"K8S_POD_NAME", "a"}}, ""},
      {"empty value", "K8S_POD_NAME=", {{"K8S_POD_NAME", ""}}, ""},
      {"value with =", "IgnoreUnknown=true;X=a=b", {{"IgnoreUnknown", "true"}, {"X", "a=b"}}, ""},
      {"unknown ignored",
       "IgnoreUnknown=TRUE;FOO=bar",
       {{"IgnoreUnknown", "TRUE"}, {"FOO", "bar"}},
       ""},
      {"unknown not ignored", "FOO=bar", {}, "unknown key \"FOO\""},
      {"IgnoreUnknown=0", "IgnoreUnknown=0;FOO=bar", {}, "unknown key \"FOO\""},
      {"IgnoreUnknown=false", "IgnoreUnknown=false;FOO=bar", {}, "unknown key \"FOO\""},
      {"IgnoreUnknown=yes", "IgnoreUnknown=yes", {}, "IgnoreUnknown=\"yes\" is not a boolean"},
      {"no =", "K8S_POD_NAME", {}, "invalid pair \"K8S_POD_NAME\""},
      {"empty key", "=x", {}, "invalid pair \"=x\""},
      {"malformed second pair", "K8S_POD_NAME=a;junk", {}, "invalid pair \"junk\""},
      {"duplicate", "K8S_POD_NAME=a;K8S_POD_NAME=b", {}, "\"K8S_POD_NAME\" given twice"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto env = Parse(With(kAdd, {{"CNI_ARGS", c.args}}));
    if (c.error.empty()) {
      const CniError* error = std::get_if<CniError>(&env);
      ASSERT_EQ(error, nullptr) << error->msg;
      EXPECT_EQ(std::get<Environment>(env).args, c.want);
    } else {
      ASSERT_TRUE(std::holds_alternative<CniError>(env));
      EXPECT_EQ(std::get<CniError>(env).code, CniError::kInvalidEnvironment);
      EXPECT_THAT(std::get<CniError>(env).msg, HasSubstr(c.error));
    }
  }
}

// --- Network configuration -----------------------------------------------

TEST(ParseNetConf, ReadsTheSpecFieldsAndDefaults) {
  auto conf = ParseNetConf(R"({"cniVersion":"1.0.0","name":"atoll","type":"atoll-cni"})");
  ASSERT_TRUE(std::holds_alternative<NetConf>(conf));
  const NetConf& c = std::get<NetConf>(conf);
  EXPECT_EQ(c.cni_version, "1.0.0");
  EXPECT_EQ(c.name, "atoll");
  EXPECT_EQ(c.type, "atoll-cni");
  EXPECT_EQ(c.socket, "/run/atoll/agent.sock");
  EXPECT_EQ(c.default_namespace, "default");
  EXPECT_EQ(c.timeout_ms, 5000u);
  EXPECT_FALSE(c.prev_result.has_value());
  EXPECT_TRUE(c.valid_attachments.empty());
  EXPECT_EQ(c.raw["type"], "atoll-cni");
}

TEST(ParseNetConf, ReadsOurFieldsPrevResultAndValidAttachments) {
  auto conf = ParseNetConf(R"({
    "cniVersion": "1.1.0", "name": "atoll", "type": "atoll-cni",
    "socket": "/tmp/h1.sock", "defaultNamespace": "kube-system", "timeoutMs": 250,
    "prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "198.19.0.5/24"}]},
    "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"},
                                  {"containerID": "c2", "ifname": "net1"}]
  })");
  ASSERT_TRUE(std::holds_alternative<NetConf>(conf)) << std::get<CniError>(conf).msg;
  const NetConf& c = std::get<NetConf>(conf);
  EXPECT_EQ(c.socket, "/tmp/h1.sock");
  EXPECT_EQ(c.default_namespace, "kube-system");
  EXPECT_EQ(c.timeout_ms, 250u);
  ASSERT_TRUE(c.prev_result.has_value());
  EXPECT_EQ((*c.prev_result)["ips"][0]["address"], "198.19.0.5/24");
  EXPECT_EQ(c.valid_attachments, (std::vector<Attachment>{{"c1", "eth0"}, {"c2", "net1"}}));
}

TEST(ParseNetConf, AcceptsEverySupportedVersion) {
  for (std::string_view version : kSupportedVersions) {
    SCOPED_TRACE(version);
    auto conf =
        ParseNetConf(R"({"cniVersion":")" + std::string(version) + R"(","name":"n","type":"t"})");
    ASSERT_TRUE(std::holds_alternative<NetConf>(conf));
    EXPECT_EQ(std::get<NetConf>(conf).cni_version, version);
  }
}

struct ConfBad {
  std::string label;
  std::string json;
  int code;
  std::string message;
};

TEST(ParseNetConf, RejectsWithTheSpecCode) {
  const std::string head = R"({"cniVersion":"1.0.0","name":"n","type":"t",)";
  const ConfBad cases[] = {
      {"empty", "", CniError::kDecodeFailure, "not valid JSON (at byte 1)"},
      {"truncated", R"({"cniVersion":)", CniError::kDecodeFailure, "not valid JSON (at byte 15)"},
      {"garbage", "{]", CniError::kDecodeFailure, "not valid JSON (at byte 2)"},
      {"array", "[]", CniError::kInvalidNetworkConfig, "must be a JSON object, not array"},
      {"no cniVersion", R"({"name":"n","type":"t"})", CniError::kInvalidNetworkConfig,
       "missing field \"cniVersion\""},
      {"no name", R"({"cniVersion":"1.0.0","type":"t"})", CniError::kInvalidNetworkConfig,
       "missing field \"name\""},
      {"no type", R"({"cniVersion":"1.0.0","name":"n"})", CniError::kInvalidNetworkConfig,
       "missing field \"type\""},
      {"numeric cniVersion", R"({"cniVersion":1,"name":"n","type":"t"})",
       CniError::kInvalidNetworkConfig, "field \"cniVersion\" must be a string, not number"},
      {"null name", R"({"cniVersion":"1.0.0","name":null,"type":"t"})",
       CniError::kInvalidNetworkConfig, "field \"name\" must be a string, not null"},
      {"0.2.0", R"({"cniVersion":"0.2.0","name":"n","type":"t"})", CniError::kIncompatibleVersion,
       "unsupported cniVersion \"0.2.0\"; supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"},
      {"2.0.0", R"({"cniVersion":"2.0.0","name":"n","type":"t"})", CniError::kIncompatibleVersion,
       "unsupported cniVersion \"2.0.0\""},
      {"empty socket", head + R"("socket":""})", CniError::kInvalidNetworkConfig,
       "field \"socket\" must be a non-empty string, not \"\""},
      {"numeric socket", head + R"("socket":3})", CniError::kInvalidNetworkConfig,
       "field \"socket\" must be a non-empty string, not 3"},
      {"list namespace", head + R"("defaultNamespace":["a"]})", CniError::kInvalidNetworkConfig,
       "field \"defaultNamespace\" must be a non-empty string, not [\"a\"]"},
      {"zero timeout", head + R"("timeoutMs":0})", CniError::kInvalidNetworkConfig,
       "field \"timeoutMs\" must be a whole number of milliseconds from 1 to 4294967295, not 0"},
      {"negative timeout", head + R"("timeoutMs":-5})", CniError::kInvalidNetworkConfig, "not -5"},
      {"fractional timeout", head + R"("timeoutMs":1.5})", CniError::kInvalidNetworkConfig,
       "not 1.5"},
      {"huge timeout", head + R"("timeoutMs":4294967296})", CniError::kInvalidNetworkConfig,
       "not 4294967296"},
      {"string timeout", head + R"("timeoutMs":"5000"})", CniError::kInvalidNetworkConfig,
       "not \"5000\""},
      {"prevResult list", head + R"("prevResult":[]})", CniError::kInvalidNetworkConfig,
       "field \"prevResult\" must be an object, not array"},
      {"attachments object", head + R"("cni.dev/valid-attachments":{}})",
       CniError::kInvalidNetworkConfig,
       "field \"cni.dev/valid-attachments\" must be an array, not object"},
      {"attachment without ifname", head + R"("cni.dev/valid-attachments":[{"containerID":"c"}]})",
       CniError::kInvalidNetworkConfig, "field \"cni.dev/valid-attachments\"[0] must be"},
      {"attachment not object", head + R"("cni.dev/valid-attachments":[{"containerID":"c",
       "ifname":"eth0"}, 7]})",
       CniError::kInvalidNetworkConfig, "field \"cni.dev/valid-attachments\"[1] must be"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto conf = ParseNetConf(c.json);
    ASSERT_TRUE(std::holds_alternative<CniError>(conf));
    const CniError& error = std::get<CniError>(conf);
    EXPECT_EQ(error.code, c.code);
    EXPECT_THAT(error.msg, HasSubstr(c.message));
    if (c.code == CniError::kDecodeFailure) {
      EXPECT_THAT(error.details, HasSubstr("parse error"));
    }
  }
}

// --- Pod identity --------------------------------------------------------

TEST(PodFromArgs, TakesTheNamespaceFromArgsOrTheConfig) {
  NetConf conf;
  conf.default_namespace = "fallback";
  Environment env;
  EXPECT_EQ(PodFromArgs(env, conf), (PodRef{"fallback", ""}));
  env.args = {{"K8S_POD_NAMESPACE", ""}, {"K8S_POD_NAME", "web-0"}};
  EXPECT_EQ(PodFromArgs(env, conf), (PodRef{"fallback", "web-0"}));
  env.args = {{"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", "web-0"}};
  EXPECT_EQ(PodFromArgs(env, conf), (PodRef{"shop", "web-0"}));
}

// --- Output --------------------------------------------------------------

Result DualStackResult() {
  Result r;
  r.interfaces = {{"eth0", "0a:58:c6:13:00:05", "/var/run/netns/cni-1"}, {"veth1a2b", "", ""}};
  r.ips = {{"198.19.0.5/24", "198.19.0.1", 0}, {"fd00:10::5/64", "", std::nullopt}};
  r.routes = {{"0.0.0.0/0", "198.19.0.1"}, {"::/0", ""}};
  return r;
}

TEST(ResultJson, WritesTheFormatOfEachVersion) {
  for (std::string_view version : kSupportedVersions) {
    SCOPED_TRACE(version);
    const nlohmann::json out = nlohmann::json::parse(ResultJson(DualStackResult(), version));
    const bool legacy = version.starts_with("0.");
    EXPECT_EQ(out["cniVersion"], version);

    ASSERT_EQ(out["interfaces"].size(), 2u);
    EXPECT_EQ(out["interfaces"][0], (nlohmann::json{{"name", "eth0"},
                                                    {"mac", "0a:58:c6:13:00:05"},
                                                    {"sandbox", "/var/run/netns/cni-1"}}));
    EXPECT_EQ(out["interfaces"][1], (nlohmann::json{{"name", "veth1a2b"}}));

    ASSERT_EQ(out["ips"].size(), 2u);
    const nlohmann::json& v4 = out["ips"][0];
    const nlohmann::json& v6 = out["ips"][1];
    EXPECT_EQ(v4["address"], "198.19.0.5/24");
    EXPECT_EQ(v4["gateway"], "198.19.0.1");
    EXPECT_EQ(v4["interface"], 0);
    EXPECT_EQ(v6["address"], "fd00:10::5/64");
    EXPECT_FALSE(v6.contains("gateway"));
    EXPECT_FALSE(v6.contains("interface"));
    if (legacy) {
      EXPECT_EQ(v4["version"], "4");
      EXPECT_EQ(v6["version"], "6");
    } else {
      EXPECT_FALSE(v4.contains("version"));
      EXPECT_FALSE(v6.contains("version"));
    }

    ASSERT_EQ(out["routes"].size(), 2u);
    EXPECT_EQ(out["routes"][0], (nlohmann::json{{"dst", "0.0.0.0/0"}, {"gw", "198.19.0.1"}}));
    EXPECT_EQ(out["routes"][1], (nlohmann::json{{"dst", "::/0"}}));
    EXPECT_FALSE(out.contains("dns"));
  }
}

TEST(ResultJson, EmptyResultHoldsOnlyTheVersion) {
  EXPECT_EQ(ResultJson(Result{}, "1.1.0"), R"({"cniVersion":"1.1.0"})");
}

// --- Results from an earlier plugin (chaining) -----------------------------

TEST(ParseResult, ReadsEveryVersionsFormatAndWritesItInAnother) {
  // A 0.4.0 result (with "version" in each ip) read back and written as 1.0.0
  // and the other way round: what a chained plugin does with prevResult.
  for (std::string_view from : kSupportedVersions) {
    for (std::string_view to : kSupportedVersions) {
      SCOPED_TRACE(std::string(from) + " -> " + std::string(to));
      CniResult<Result> parsed =
          ParseResult(nlohmann::json::parse(ResultJson(DualStackResult(), from)));
      ASSERT_TRUE(std::holds_alternative<Result>(parsed)) << std::get<CniError>(parsed).msg;
      EXPECT_EQ(ResultJson(std::get<Result>(parsed), to), ResultJson(DualStackResult(), to));
    }
  }
}

TEST(ParseResult, KeepsDns) {
  CniResult<Result> parsed = ParseResult(nlohmann::json::parse(
      R"({"cniVersion":"1.0.0","ips":[{"address":"198.19.0.5/24"}],
          "dns":{"nameservers":["198.18.64.10"],"search":["svc"]}})"));
  ASSERT_TRUE(std::holds_alternative<Result>(parsed));
  const nlohmann::json out = nlohmann::json::parse(ResultJson(std::get<Result>(parsed), "1.0.0"));
  EXPECT_EQ(out["dns"]["nameservers"][0], "198.18.64.10");
  EXPECT_EQ(out["dns"]["search"][0], "svc");
}

TEST(ParseResult, RejectsWithCode7NamingTheField) {
  struct Case {
    std::string json;
    std::string says;
  };
  const std::vector<Case> cases = {
      {R"([])", "prevResult must be an object"},
      {R"({"interfaces":{}})", "prevResult.interfaces must be an array"},
      {R"({"interfaces":[{"mac":"0a:58:00:00:00:01"}]})", "prevResult.interfaces[0]"},
      {R"({"ips":[{"gateway":"198.19.0.1"}]})", "prevResult.ips[0]"},
      {R"({"ips":[{"address":"198.19.0.5/24","interface":0}]})",
       "interface index that names no interface"},
      {R"({"routes":[{"gw":"198.19.0.1"}]})", "prevResult.routes[0]"},
      {R"({"dns":"x"})", "prevResult.dns must be an object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    CniResult<Result> parsed = ParseResult(nlohmann::json::parse(c.json));
    ASSERT_TRUE(std::holds_alternative<CniError>(parsed));
    EXPECT_EQ(std::get<CniError>(parsed).code, CniError::kInvalidNetworkConfig);
    EXPECT_THAT(std::get<CniError>(parsed).msg, HasSubstr(c.says));
  }
}

TEST(AppendResult, PutsOursAfterThePreviousPluginsAndRenumbersInterfaces) {
  Result previous;
  previous.interfaces = {{"macvlan0", "", ""}, {"net1", "0a:58:c6:12:30:02", "/run/netns/p"}};
  previous.ips = {{"198.18.48.2/24", "", 1}};
  previous.dns = nlohmann::json{{"nameservers", {"198.18.64.10"}}};
  Result ours;
  ours.interfaces = {{"atl0123456789a", "aa:bb:cc:dd:ee:ff", ""},
                     {"eth0", "0a:58:c6:13:00:05", "/run/netns/p"}};
  ours.ips = {{"198.19.0.5/24", "198.19.0.1", 1}};
  ours.routes = {{"0.0.0.0/0", "198.19.0.1"}};

  const Result merged = AppendResult(previous, ours);
  ASSERT_EQ(merged.interfaces.size(), 4u);
  EXPECT_EQ(merged.interfaces[3].name, "eth0");
  ASSERT_EQ(merged.ips.size(), 2u);
  EXPECT_EQ(merged.ips[0].interface, 1);
  EXPECT_EQ(merged.ips[1].address, "198.19.0.5/24");
  EXPECT_EQ(merged.ips[1].interface, 3);
  ASSERT_EQ(merged.routes.size(), 1u);
  EXPECT_EQ(merged.dns, previous.dns);
}

TEST(ErrorJson, WritesCodeMessageAndDetails) {
  const nlohmann::json full = nlohmann::json::parse(
      ErrorJson({CniError::kPoolExhausted, "no address left", "segment shop"}, "1.0.0"));
  EXPECT_EQ(full, (nlohmann::json{{"cniVersion", "1.0.0"},
                                  {"code", 101},
                                  {"msg", "no address left"},
                                  {"details", "segment shop"}}));
  const nlohmann::json bare =
      nlohmann::json::parse(ErrorJson({CniError::kTryAgainLater, "agent busy", ""}, "0.4.0"));
  EXPECT_EQ(bare, (nlohmann::json{{"cniVersion", "0.4.0"}, {"code", 11}, {"msg", "agent busy"}}));
  // Invalid UTF-8 in a message is replaced, not thrown over.
  const nlohmann::json odd =
      nlohmann::json::parse(ErrorJson({CniError::kIoFailure, "bad \xff byte", ""}, "1.1.0"));
  EXPECT_EQ(odd["code"], 5);
}

TEST(ErrorJson, CodesAreTheSpecs) {
  EXPECT_EQ(CniError::kIncompatibleVersion, 1);
  EXPECT_EQ(CniError::kUnsupportedField, 2);
  EXPECT_EQ(CniError::kUnknownContainer, 3);
  EXPECT_EQ(CniError::kInvalidEnvironment, 4);
  EXPECT_EQ(CniError::kIoFailure, 5);
  EXPECT_EQ(CniError::kDecodeFailure, 6);
  EXPECT_EQ(CniError::kInvalidNetworkConfig, 7);
  EXPECT_EQ(CniError::kTryAgainLater, 11);
  EXPECT_EQ(CniError::kNotAvailable, 50);
  EXPECT_EQ(CniError::kAgentRefused, 100);
  EXPECT_EQ(CniError::kPoolExhausted, 101);
}

TEST(VersionJson, ListsTheSupportedVersions) {
  const nlohmann::json supported = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
  const struct {
    std::string requested;
    std::string want;
  } cases[] = {{"", "1.1.0"}, {"0.3.1", "0.3.1"}, {"1.0.0", "1.0.0"}, {"0.2.0", "1.1.0"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.requested);
    const nlohmann::json out = nlohmann::json::parse(VersionJson(c.requested));
    EXPECT_EQ(out, (nlohmann::json{{"cniVersion", c.want}, {"supportedVersions", supported}}));
  }
}

}  // namespace
}  // namespace atl::cni
