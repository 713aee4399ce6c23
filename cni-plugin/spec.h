// The CNI specification as atoll-cni speaks it: the environment a runtime sets,
// the network configuration on stdin, and the result, error and version JSON
// on stdout. Pure code, no networking, so that every rule is unit-tested.
// Spec: https://github.com/containernetworking/cni/blob/main/SPEC.md
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace atl::cni {

// The versions whose configuration and result formats we read and write.
// 0.1.0 and 0.2.0 have a different result shape and no runtime we target
// sends them any more.
inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0",
                                                                       "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

bool IsSupportedVersion(std::string_view version);

// An error as the plugin reports it on stdout (SPEC.md, "Error"). Codes 1-99
// are the spec's ("Well-known Error Codes"); 100 and up are ours.
struct CniError {
  // Spec codes.
  static constexpr int kIncompatibleVersion = 1;
  static constexpr int kUnsupportedField = 2;
  static constexpr int kUnknownContainer = 3;
  static constexpr int kInvalidEnvironment = 4;
  static constexpr int kIoFailure = 5;
  static constexpr int kDecodeFailure = 6;
  static constexpr int kInvalidNetworkConfig = 7;
  static constexpr int kTryAgainLater = 11;
  // STATUS (1.1.0): the plugin cannot serve ADDs now.
  static constexpr int kNotAvailable = 50;
  // Atoll's codes. The agent on this host refused the request: the pod's
  // namespace is unknown to it, or it rejected the attachment.
  static constexpr int kAgentRefused = 100;
  // The node's address block for the pod's segment has no free address left.
  static constexpr int kPoolExhausted = 101;

  int code = 0;
  std::string msg;
  std::string details;

  friend bool operator==(const CniError&, const CniError&) = default;
};

// {"cniVersion", "code", "msg", "details"}; details are left out when empty.
std::string ErrorJson(const CniError& error, std::string_view cni_version);

// Either the parsed value or the error to report with its spec code.
template <typename T>
using CniResult = std::variant<T, CniError>;

enum class Command { kAdd, kDel, kCheck, kGc, kStatus, kVersion };
std::string_view CommandName(Command command);

// The execution parameters (SPEC.md, section 2 "Parameters").
struct Environment {
  Command command = Command::kVersion;
  std::string container_id;  // CNI_CONTAINERID
  std::string netns;         // CNI_NETNS
  std::string ifname;        // CNI_IFNAME
  std::string path;          // CNI_PATH
  // CNI_ARGS, "K=V;K=V". Only the keys we know are accepted, unless the runtime
  // sets IgnoreUnknown=1 as kubelet and containerd do (the convention of
  // libcni's LoadArgs, which plugins written in Go follow).
  std::map<std::string, std::string> args;
};

// Reads the CNI_* variables through getenv (std::getenv in the binary, a map
// in tests). Errors carry code 4 (invalid environment variables) and name the
// variable or value at fault.
CniResult<Environment> ParseEnvironment(const std::function<const char*(const char*)>& getenv);

// GC's list of attachments the runtime still uses (SPEC.md, "GC: Clean up
// any stale resources", cni.dev/valid-attachments).
struct Attachment {
  std::string container_id;
  std::string ifname;

  friend bool operator==(const Attachment&, const Attachment&) = default;
};

// The plugin configuration object on stdin (SPEC.md, section 1 "Plugin
// configuration objects"), with Atoll's own fields.
struct NetConf {
  std::string cni_version;
  std::string name;
  std::string type;
  // Ours: where the agent listens, the namespace for pods without
  // K8S_POD_NAMESPACE, and how long to wait for the agent.
  std::string socket = "/run/atoll/agent.sock";
  std::string default_namespace = "default";
  uint32_t timeout_ms = 5000;
  std::optional<nlohmann::json> prev_result;
  std::vector<Attachment> valid_attachments;
  nlohmann::json raw;
};

// Bad JSON is code 6 with the byte position; a missing or mistyped required
// field, or one of ours out of range, is code 7; an unsupported cniVersion is
// code 1.
CniResult<NetConf> ParseNetConf(std::string_view stdin_bytes);

// Who the attachment is for. Kubernetes runtimes pass it in CNI_ARGS.
struct PodRef {
  std::string pod_namespace;
  std::string name;  // Empty when the runtime is not Kubernetes.

  friend bool operator==(const PodRef&, const PodRef&) = default;
};
PodRef PodFromArgs(const Environment& env, const NetConf& conf);

// A successful ADD's result (SPEC.md, section 5 "Success"). DNS is left
// empty: the pod's resolver comes from the kubelet.
struct Result {
  struct Interface {
    std::string name;
    std::string mac;
    std::string sandbox;  // The netns path; empty for host-side interfaces.
  };
  struct Ip {
    std::string address;           // With prefix length: "198.19.0.5/24".
    std::string gateway;           // Empty for none.
    std::optional<int> interface;  // Index into interfaces.
  };
  struct Route {
    std::string dst;  // "0.0.0.0/0"
    std::string gw;   // Empty for the interface's gateway.
  };
  std::vector<Interface> interfaces;
  std::vector<Ip> ips;
  std::vector<Route> routes;
  // Passed through from an earlier plugin's result, never set by us.
  nlohmann::json dns;
};

// Reads a result in any supported version's format: a chained plugin's
// prevResult. Code 7 (it is part of the network configuration) naming the
// field at fault.
CniResult<Result> ParseResult(const nlohmann::json& json);

// The result of a plugin that comes after `previous` in a chain (SPEC.md,
// section 4 "Chained plugins"): previous's interfaces, IPs, routes and DNS,
// then ours, with our IPs' interface indexes moved past previous's interfaces.
Result AppendResult(Result previous, const Result& ours);

// Writes result in the format of version (the one the runtime asked for, and
// the result's cniVersion): 0.3.x and 0.4.0 carry "version": "4"|"6" in each
// ip, 1.0.0 removed it.
std::string ResultJson(const Result& result, std::string_view version);

// VERSION's output (SPEC.md, "VERSION: probe plugin version support").
// cniVersion echoes the requested version when we support it, else ours.
std::string VersionJson(std::string_view requested_version);

}  // namespace atl::cni
