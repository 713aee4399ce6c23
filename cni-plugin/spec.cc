#include "cni-plugin/spec.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace atl::cni {
namespace {

using Json = nlohmann::json;
// Output keeps the spec's field order, which is what a reader of logs expects.
using OrderedJson = nlohmann::ordered_json;

// Debian's Abseil has its own string_view type.
absl::string_view Av(std::string_view text) { return absl::string_view(text.data(), text.size()); }

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::Utf8SafeCEscape(Av(text)), "\"");
}

CniError EnvError(std::string msg) {
  return CniError{CniError::kInvalidEnvironment, std::move(msg), ""};
}

CniError ConfigError(std::string msg) {
  return CniError{CniError::kInvalidNetworkConfig, std::move(msg), ""};
}

// The CNI_ARGS keys Kubernetes runtimes send (kubelet's dockershim, containerd
// and CRI-O all set these four) and the IgnoreUnknown switch itself.
constexpr std::string_view kIgnoreUnknown = "IgnoreUnknown";
constexpr std::string_view kPodNamespaceArg = "K8S_POD_NAMESPACE";
constexpr std::string_view kPodNameArg = "K8S_POD_NAME";
constexpr std::array<std::string_view, 5> kKnownArgs = {
    kIgnoreUnknown, kPodNamespaceArg, kPodNameArg, "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"};

// SPEC.md, section 2 "Parameters": CNI_CONTAINERID "must start with an
// alphanumeric character, optionally followed by any combination of one or
// more alphanumeric characters, underscore (_), dot (.) or hyphen (-)".
bool ValidContainerId(std::string_view id) {
  if (id.empty() || !absl::ascii_isalnum(static_cast<unsigned char>(id[0]))) return false;
  return std::all_of(id.begin() + 1, id.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// SPEC.md, section 2 "Parameters": CNI_IFNAME "must be no longer than 15
// characters, not be empty, not be '.' or '..', not contain '/', ':' or any
// whitespace" (the kernel's IFNAMSIZ less the terminating NUL).
bool ValidIfname(std::string_view name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || absl::ascii_isspace(static_cast<unsigned char>(c));
  });
}

CniResult<std::map<std::string, std::string>> ParseArgs(std::string_view text) {
  std::map<std::string, std::string> args;
  // Empty pieces (a trailing ';') carry nothing and some runtimes emit them.
  for (absl::string_view pair : absl::StrSplit(Av(text), ';', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    if (eq == absl::string_view::npos || eq == 0) {
      return EnvError(absl::StrCat("CNI_ARGS: invalid pair ",
                                   Quote(std::string_view(pair.data(), pair.size())),
                                   ": want KEY=VALUE"));
    }
    std::string key(pair.substr(0, eq));
    if (args.contains(key)) {
      return EnvError(absl::StrCat("CNI_ARGS: key ", Quote(key), " given twice"));
    }
    args.emplace(std::move(key), std::string(pair.substr(eq + 1)));
  }

  bool ignore_unknown = false;
  if (auto it = args.find(std::string(kIgnoreUnknown)); it != args.end()) {
    // libcni's UnmarshallableBool: "1"/"true" or "0"/"false", any case.
    const std::string value = absl::AsciiStrToLower(it->second);
    if (value == "1" || value == "true") {
      ignore_unknown = true;
    } else if (value != "0" && value != "false") {
      return EnvError(absl::StrCat("CNI_ARGS: IgnoreUnknown=", Quote(it->second),
                                   " is not a boolean (1, true, 0 or false)"));
    }
  }
  if (!ignore_unknown) {
    for (const auto& [key, value] : args) {
      if (std::find(kKnownArgs.begin(), kKnownArgs.end(), key) == kKnownArgs.end()) {
        return EnvError(absl::StrCat("CNI_ARGS: unknown key ", Quote(key),
                                     " (set IgnoreUnknown=1 to allow it)"));
      }
    }
  }
  return args;
}

struct CommandInfo {
  std::string_view name;
  Command command;
  bool needs_attachment;  // CNI_CONTAINERID and CNI_IFNAME.
  bool needs_netns;
};

// SPEC.md, section 2 "CNI operations": ADD and CHECK need the container, its
// netns and the interface; DEL needs the container and interface, CNI_NETNS
// may be empty (the netns may already be gone); GC, STATUS and VERSION
// describe no attachment. CNI_PATH is left optional everywhere: atoll-cni
// delegates to no other plugin.
constexpr std::array<CommandInfo, 6> kCommands = {{
    {"ADD", Command::kAdd, true, true},
    {"DEL", Command::kDel, true, false},
    {"CHECK", Command::kCheck, true, true},
    {"GC", Command::kGc, false, false},
    {"STATUS", Command::kStatus, false, false},
    {"VERSION", Command::kVersion, false, false},
}};

// 1.0.0 dropped ips[].version (SPEC.md 1.0.0, "Result"); all 0.x we support
// have it.
bool LegacyResultFormat(std::string_view version) { return version.starts_with("0."); }

}  // namespace

bool IsSupportedVersion(std::string_view version) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
         kSupportedVersions.end();
}

std::string ErrorJson(const CniError& error, std::string_view cni_version) {
  OrderedJson out;
  out["cniVersion"] = std::string(cni_version);
  out["code"] = error.code;
  out["msg"] = error.msg;
  if (!error.details.empty()) out["details"] = error.details;
  // Replace invalid UTF-8 rather than throw: this is the last word we send.
  return out.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

std::string_view CommandName(Command command) {
  for (const auto& info : kCommands) {
    if (info.command == command) return info.name;
  }
  return "?";
}

CniResult<Environment> ParseEnvironment(const std::function<const char*(const char*)>& getenv) {
  auto get = [&](const char* name) -> std::optional<std::string> {
    const char* value = getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  // Present and not empty: the spec's "must not be empty" for required ones.
  auto require = [&](const char* name, std::string& out) -> std::optional<CniError> {
    std::optional<std::string> value = get(name);
    if (!value.has_value() || value->empty()) {
      return EnvError(absl::StrCat("required environment variable ", name, " is not set"));
    }
    out = *std::move(value);
    return std::nullopt;
  };

  std::optional<std::string> command = get("CNI_COMMAND");
  if (!command.has_value() || command->empty()) {
    return EnvError("required environment variable CNI_COMMAND is not set");
  }
  const CommandInfo* info = nullptr;
  for (const auto& candidate : kCommands) {
    if (candidate.name == *command) info = &candidate;
  }
  if (info == nullptr) {
    return EnvError(absl::StrCat("unknown CNI_COMMAND ", Quote(*command),
                                 ": one of ADD, DEL, CHECK, GC, STATUS, VERSION"));
  }

  Environment env;
  env.command = info->command;
  if (info->needs_attachment) {
    if (auto error = require("CNI_CONTAINERID", env.container_id)) return *error;
    if (info->needs_netns) {
      if (auto error = require("CNI_NETNS", env.netns)) return *error;
    } else {
      env.netns = get("CNI_NETNS").value_or("");
    }
    if (auto error = require("CNI_IFNAME", env.ifname)) return *error;
    if (!ValidContainerId(env.container_id)) {
      return EnvError(absl::StrCat(
          "invalid CNI_CONTAINERID ", Quote(env.container_id),
          ": must start with a letter or digit, then letters, digits, '_', '.' or '-'"));
    }
    if (!ValidIfname(env.ifname)) {
      return EnvError(absl::StrCat(
          "invalid CNI_IFNAME ", Quote(env.ifname),
          ": must be 1 to 15 bytes, not \".\" or \"..\", without '/', ':' or whitespace"));
    }
  }
  env.path = get("CNI_PATH").value_or("");
  CniResult<std::map<std::string, std::string>> args = ParseArgs(get("CNI_ARGS").value_or(""));
  if (auto* error = std::get_if<CniError>(&args)) return *error;
  env.args = std::get<0>(std::move(args));
  return env;
}

CniResult<NetConf> ParseNetConf(std::string_view stdin_bytes) {
  NetConf conf;
  try {
    conf.raw = Json::parse(stdin_bytes);
  } catch (const Json::parse_error& e) {
    return CniError{CniError::kDecodeFailure,
                    absl::StrCat("network configuration is not valid JSON (at byte ", e.byte, ")"),
                    e.what()};
  }
  if (!conf.raw.is_object()) {
    return ConfigError(
        absl::StrCat("network configuration must be a JSON object, not ", conf.raw.type_name()));
  }
  const Json& raw = conf.raw;

  // SPEC.md, section 1 "Plugin configuration objects": cniVersion, name and
  // type are required strings.
  auto required_string = [&](const char* field, std::string& out) -> std::optional<CniError> {
    auto it = raw.find(field);
    if (it == raw.end()) return ConfigError(absl::StrCat("missing field \"", field, "\""));
    if (!it->is_string()) {
      return ConfigError(
          absl::StrCat("field \"", field, "\" must be a string, not ", it->type_name()));
    }
    out = it->get<std::string>();
    return std::nullopt;
  };
  if (auto error = required_string("cniVersion", conf.cni_version)) return *error;
  if (auto error = required_string("name", conf.name)) return *error;
  if (auto error = required_string("type", conf.type)) return *error;
  if (!IsSupportedVersion(conf.cni_version)) {
    return CniError{
        CniError::kIncompatibleVersion,
        absl::StrCat("unsupported cniVersion ", Quote(conf.cni_version), "; supported: ",
                     absl::StrJoin(kSupportedVersions, ", ",
                                   [](std::string* out, std::string_view v) { out->append(v); })),
        ""};
  }

  auto optional_string = [&](const char* field, std::string& out) -> std::optional<CniError> {
    auto it = raw.find(field);
    if (it == raw.end()) return std::nullopt;
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return ConfigError(absl::StrCat("field \"", field, "\" must be a non-empty string, not ",
                                      it->dump(-1, ' ', false, Json::error_handler_t::replace)));
    }
    out = it->get<std::string>();
    return std::nullopt;
  };
  if (auto error = optional_string("socket", conf.socket)) return *error;
  if (auto error = optional_string("defaultNamespace", conf.default_namespace)) return *error;
  if (auto it = raw.find("timeoutMs"); it != raw.end()) {
    // Integral JSON numbers only: 1.5 ms is a typo, not a wish.
    const bool in_range = (it->is_number_unsigned() && it->get<uint64_t>() > 0 &&
                           it->get<uint64_t>() <= std::numeric_limits<uint32_t>::max()) ||
                          (it->is_number_integer() && it->get<int64_t>() > 0 &&
                           it->get<int64_t>() <= std::numeric_limits<uint32_t>::max());
    if (!in_range) {
      return ConfigError(
          absl::StrCat("field \"timeoutMs\" must be a whole number of "
                       "milliseconds from 1 to 4294967295, not ",
                       it->dump(-1, ' ', false, Json::error_handler_t::replace)));
    }
    conf.timeout_ms = static_cast<uint32_t>(it->get<uint64_t>());
  }

  // SPEC.md, section 1 "Plugin configuration objects": the runtime inserts
  // prevResult for CHECK and DEL (and ADD in a chain).
  if (auto it = raw.find("prevResult"); it != raw.end() && !it->is_null()) {
    if (!it->is_object()) {
      return ConfigError(
          absl::StrCat("field \"prevResult\" must be an object, not ", it->type_name()));
    }
    conf.prev_result = *it;
  }

  // SPEC.md, "GC": cni.dev/valid-attachments is [{containerID, ifname}].
  if (auto it = raw.find("cni.dev/valid-attachments"); it != raw.end() && !it->is_null()) {
    constexpr std::string_view kField = "cni.dev/valid-attachments";
    if (!it->is_array()) {
      return ConfigError(
          absl::StrCat("field \"", Av(kField), "\" must be an array, not ", it->type_name()));
    }
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& item = (*it)[i];
      auto container = item.is_object() ? item.find("containerID") : item.end();
      auto ifname = item.is_object() ? item.find("ifname") : item.end();
      if (!item.is_object() || container == item.end() || !container->is_string() ||
          ifname == item.end() || !ifname->is_string()) {
        return ConfigError(absl::StrCat("field \"", Av(kField), "\"[", i,
                                        "] must be {\"containerID\": string, \"ifname\": string}"));
      }
      conf.valid_attachments.push_back({container->get<std::string>(), ifname->get<std::string>()});
    }
  }
  return conf;
}

PodRef PodFromArgs(const Environment& env, const NetConf& conf) {
  PodRef pod;
  auto ns = env.args.find(std::string(kPodNamespaceArg));
  pod.pod_namespace =
      ns != env.args.end() && !ns->second.empty() ? ns->second : conf.default_namespace;
  if (auto name = env.args.find(std::string(kPodNameArg)); name != env.args.end()) {
    pod.name = name->second;
  }
  return pod;
}

std::string ResultJson(const Result& result, std::string_view version) {
  const bool legacy = LegacyResultFormat(version);
  OrderedJson out;
  out["cniVersion"] = std::string(version);
  if (!result.interfaces.empty()) {
    OrderedJson interfaces = OrderedJson::array();
    for (const auto& interface : result.interfaces) {
      OrderedJson item;
      item["name"] = interface.name;
      if (!interface.mac.empty()) item["mac"] = interface.mac;
      if (!interface.sandbox.empty()) item["sandbox"] = interface.sandbox;
      interfaces.push_back(std::move(item));
    }
    out["interfaces"] = std::move(interfaces);
  }
  if (!result.ips.empty()) {
    OrderedJson ips = OrderedJson::array();
    for (const auto& ip : result.ips) {
      OrderedJson item;
      // IPv6 text always holds a ':' and IPv4 text never does.
      if (legacy) item["version"] = ip.address.find(':') == std::string::npos ? "4" : "6";
      item["address"] = ip.address;
      if (!ip.gateway.empty()) item["gateway"] = ip.gateway;
      if (ip.interface.has_value()) item["interface"] = *ip.interface;
      ips.push_back(std::move(item));
    }
    out["ips"] = std::move(ips);
  }
  if (!result.routes.empty()) {
    OrderedJson routes = OrderedJson::array();
    for (const auto& route : result.routes) {
      OrderedJson item;
      item["dst"] = route.dst;
      if (!route.gw.empty()) item["gw"] = route.gw;
      routes.push_back(std::move(item));
    }
    out["routes"] = std::move(routes);
  }
  if (result.dns.is_object() && !result.dns.empty()) out["dns"] = result.dns;
  return out.dump(-1, ' ', false, OrderedJson::error_handler_t::replace);
}

CniResult<Result> ParseResult(const Json& json) {
  if (!json.is_object()) {
    return ConfigError(absl::StrCat("prevResult must be an object, not ", json.type_name()));
  }
  // A string member of `item`, "" when absent; false when present but not a string.
  auto read = [](const Json& item, const char* field, std::string& out) {
    auto it = item.find(field);
    if (it == item.end() || it->is_null()) return true;
    if (!it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  auto array = [&](const char* field, const Json*& out) -> std::optional<CniError> {
    out = nullptr;
    auto it = json.find(field);
    if (it == json.end() || it->is_null()) return std::nullopt;
    if (!it->is_array()) {
      return ConfigError(
          absl::StrCat("prevResult.", field, " must be an array, not ", it->type_name()));
    }
    out = &*it;
    return std::nullopt;
  };
  auto bad = [](const char* field, size_t i, const char* what) {
    return ConfigError(absl::StrCat("prevResult.", field, "[", i, "] ", what));
  };

  Result result;
  const Json* items = nullptr;
  if (auto error = array("interfaces", items)) return *error;
  for (size_t i = 0; items && i < items->size(); ++i) {
    const Json& item = (*items)[i];
    Result::Interface& interface = result.interfaces.emplace_back();
    if (!item.is_object() || !read(item, "name", interface.name) || interface.name.empty() ||
        !read(item, "mac", interface.mac) || !read(item, "sandbox", interface.sandbox)) {
      return bad("interfaces", i,
                 "must be {\"name\": string, \"mac\"?: string, \"sandbox\"?: string}");
    }
  }
  if (auto error = array("ips", items)) return *error;
  for (size_t i = 0; items && i < items->size(); ++i) {
    const Json& item = (*items)[i];
    Result::Ip& ip = result.ips.emplace_back();
    // 0.3.x and 0.4.0 also carry "version", which the address itself implies.
    if (!item.is_object() || !read(item, "address", ip.address) || ip.address.empty() ||
        !read(item, "gateway", ip.gateway)) {
      return bad("ips", i,
                 "must be {\"address\": string, \"gateway\"?: string, \"interface\"?: int}");
    }
    if (auto it = item.find("interface"); it != item.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
          it->get<int64_t>() >= static_cast<int64_t>(result.interfaces.size())) {
        return bad("ips", i, "has an interface index that names no interface");
      }
      ip.interface = it->get<int>();
    }
  }
  if (auto error = array("routes", items)) return *error;
  for (size_t i = 0; items && i < items->size(); ++i) {
    const Json& item = (*items)[i];
    Result::Route& route = result.routes.emplace_back();
    if (!item.is_object() || !read(item, "dst", route.dst) || route.dst.empty() ||
        !read(item, "gw", route.gw)) {
      return bad("routes", i, "must be {\"dst\": string, \"gw\"?: string}");
    }
  }
  if (auto it = json.find("dns"); it != json.end() && !it->is_null()) {
    if (!it->is_object()) {
      return ConfigError(absl::StrCat("prevResult.dns must be an object, not ", it->type_name()));
    }
    result.dns = *it;
  }
  return result;
}

Result AppendResult(Result previous, const Result& ours) {
  const int shift = static_cast<int>(previous.interfaces.size());
  previous.interfaces.insert(previous.interfaces.end(), ours.interfaces.begin(),
                             ours.interfaces.end());
  for (Result::Ip ip : ours.ips) {
    if (ip.interface.has_value()) *ip.interface += shift;
    previous.ips.push_back(std::move(ip));
  }
  previous.routes.insert(previous.routes.end(), ours.routes.begin(), ours.routes.end());
  return previous;
}

std::string VersionJson(std::string_view requested_version) {
  OrderedJson out;
  out["cniVersion"] =
      std::string(IsSupportedVersion(requested_version) ? requested_version : kLatestVersion);
  OrderedJson supported = OrderedJson::array();
  for (std::string_view version : kSupportedVersions) supported.push_back(std::string(version));
  out["supportedVersions"] = std::move(supported);
  return out.dump();
}

}  // namespace atl::cni
