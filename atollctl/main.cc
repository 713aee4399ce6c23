// atollctl: the admin command line. It reads manifests, talks to the
// controller's Admin API (and to an agent's AgentDebug API on its unix socket),
// and prints what they answer the way kubectl would.
//
// The command line is parsed by hand: it has a handful of flags, and no
// command-line library in our dependency set handles kubectl's conventions
// (flags anywhere, -oyaml, repeated -f) without as much glue as this.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "atoll.grpc.pb.h"
#include "atoll.pb.h"
#include "atollctl/format.h"
#include "atollctl/manifest.h"
#include "atollctl/names.h"

namespace atl::ctl {
namespace {

constexpr absl::string_view kDefaultController = "127.0.0.1:7470";
constexpr absl::string_view kDefaultNamespace = "default";
constexpr std::chrono::seconds kDeadline{30};
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

constexpr absl::string_view kUsage = R"(Usage: atollctl [--controller ADDR] COMMAND [ARGS]

Commands:
  apply -f FILE [-f FILE ...] [-n NS]   create or update every object of the files,
                                        all in one transaction
  delete -f FILE [-f FILE ...] [-n NS]  delete the objects the files name
  delete KIND NAME [NAME ...] [-n NS]   delete objects by name
  get KIND[,KIND ...] [NAME ...] [-n NS | -A] [-o json|yaml|wide]
                                        list objects, or show the named ones
  status [-o json|yaml|wide]            the controller's version and its agents
  agent --socket PATH [-o json|yaml]    what one host's agent has programmed

Kinds: namespaces (ns), services (svc), endpointslices, nodes (no), segments (seg)

Flags:
  --controller ADDR      the controller's admin API (default: $ATOLL_CONTROLLER,
                         else 127.0.0.1:7470)
  -f, --filename FILE    a manifest file (YAML or JSON), a directory of them, or -
                         for standard input
  -n, --namespace NS     namespace of namespaced objects (default: default)
  -A, --all-namespaces   get: list objects of every namespace
  -o, --output FORMAT    json, yaml or wide
  --socket PATH          agent: the agent's debug socket (default: $ATOLL_AGENT_SOCKET)
  -h, --help             show this text
)";

struct Options {
  std::string controller;
  std::vector<std::string> files;
  std::optional<std::string> ns;
  bool all_namespaces = false;
  std::string output;
  std::string socket;
  bool help = false;
  std::vector<std::string> args;  // the command and its operands
};

// A mistake on the command line: printed with the usage text, exit status 2.
// Thrown from deep in argument handling and caught only in Run(), within this
// file, so that every check is one line; nothing else here throws.
struct UsageError {
  std::string message;
};

absl::string_view GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    default:
      break;
  }
  return "UNKNOWN";
}

int Fail(absl::string_view message) {
  std::cerr << "error: " << message << "\n";
  return kExitError;
}

int FailRpc(const grpc::Status& status) {
  return Fail(absl::StrCat(GrpcCodeName(status.error_code()), ": ", status.error_message()));
}

// Flags may come anywhere, as with kubectl: `--flag value`, `--flag=value`,
// and for one-letter flags also `-fvalue`.
Options ParseCommandLine(int argc, char** argv) {
  Options options;
  const char* env_controller = std::getenv("ATOLL_CONTROLLER");
  options.controller = env_controller != nullptr && *env_controller != '\0'
                           ? env_controller
                           : std::string(kDefaultController);
  if (const char* env_socket = std::getenv("ATOLL_AGENT_SOCKET"); env_socket != nullptr) {
    options.socket = env_socket;
  }

  std::vector<absl::string_view> args(argv + 1, argv + argc);
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (flags_done || arg == "-" || !absl::StartsWith(arg, "-")) {
      options.args.emplace_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    absl::string_view name = arg;
    std::optional<absl::string_view> inline_value;
    if (absl::StartsWith(arg, "--")) {
      if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
      }
    } else if (arg.size() > 2) {
      name = arg.substr(0, 2);
      inline_value = arg.substr(arg[2] == '=' ? 3 : 2);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return std::string(*inline_value);
      if (i + 1 >= args.size()) throw UsageError{absl::StrCat("flag ", name, " needs a value")};
      return std::string(args[++i]);
    };
    auto no_value = [&]() {
      if (inline_value) throw UsageError{absl::StrCat("flag ", name, " takes no value")};
    };
    if (name == "--controller") {
      options.controller = value();
    } else if (name == "-f" || name == "--filename") {
      options.files.push_back(value());
    } else if (name == "-n" || name == "--namespace") {
      options.ns = value();
    } else if (name == "-o" || name == "--output") {
      options.output = value();
    } else if (name == "--socket") {
      options.socket = value();
    } else if (name == "-A" || name == "--all-namespaces") {
      no_value();
      options.all_namespaces = true;
    } else if (name == "-h" || name == "--help") {
      no_value();
      options.help = true;
    } else {
      throw UsageError{absl::StrCat("unknown flag ", arg)};
    }
  }
  return options;
}

struct Source {
  std::string name;
  std::string text;
};

absl::Status ReadFile(const std::filesystem::path& path, std::vector<Source>& out) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in || in.bad()) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  out.push_back({path.string(), std::move(text).str()});
  return absl::OkStatus();
}

// A file, the manifests of a directory (not recursively, as `kubectl -f DIR`),
// or standard input for "-".
absl::Status ReadSources(const std::vector<std::string>& files, std::vector<Source>& out) {
  for (const std::string& file : files) {
    if (file == "-") {
      std::ostringstream text;
      text << std::cin.rdbuf();
      out.push_back({"<stdin>", std::move(text).str()});
      continue;
    }
    std::error_code error;
    if (std::filesystem::is_directory(file, error)) {
      std::vector<std::filesystem::path> paths;
      for (const auto& entry : std::filesystem::directory_iterator(file, error)) {
        const std::string extension = entry.path().extension().string();
        if (entry.is_regular_file() &&
            (extension == ".yaml" || extension == ".yml" || extension == ".json")) {
          paths.push_back(entry.path());
        }
      }
      if (error)
        return absl::NotFoundError(absl::StrCat("cannot read ", file, ": ", error.message()));
      std::sort(paths.begin(), paths.end());
      for (const auto& path : paths) {
        if (absl::Status status = ReadFile(path, out); !status.ok()) return status;
      }
      continue;
    }
    if (!std::filesystem::exists(file, error)) {
      return absl::NotFoundError(absl::StrCat("the path \"", file, "\" does not exist"));
    }
    if (absl::Status status = ReadFile(file, out); !status.ok()) return status;
  }
  return absl::OkStatus();
}

// Every object of every file, in order; an object that names a namespace
// other than the one given by -n is refused, as kubectl does.
absl::StatusOr<std::vector<api::Resource>> ReadManifests(const Options& options) {
  std::vector<Source> sources;
  if (absl::Status status = ReadSources(options.files, sources); !status.ok()) return status;
  const std::string default_namespace = options.ns.value_or(std::string(kDefaultNamespace));
  std::vector<api::Resource> resources;
  for (const Source& source : sources) {
    absl::StatusOr<std::vector<api::Resource>> parsed =
        ParseManifests(source.text, source.name, default_namespace);
    if (!parsed.ok()) return parsed.status();
    for (api::Resource& resource : *parsed) {
      const api::ResourceKey key = KeyOf(resource);
      if (options.ns && FindKind(key.kind())->namespaced && key.namespace_() != *options.ns) {
        return absl::InvalidArgumentError(
            absl::StrCat(source.name, ": ", FindKind(key.kind())->manifest_kind, " \"",
                         QualifiedName(key), "\" is in namespace \"", key.namespace_(),
                         "\", not \"", *options.ns, "\" given by --namespace"));
      }
      resources.push_back(std::move(resource));
    }
  }
  if (resources.empty()) return absl::InvalidArgumentError("no objects passed");
  return resources;
}

std::unique_ptr<grpc::ClientContext> NewContext() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + kDeadline);
  return context;
}

std::unique_ptr<api::Admin::Stub> AdminStub(const Options& options) {
  return api::Admin::NewStub(
      grpc::CreateChannel(options.controller, grpc::InsecureChannelCredentials()));
}

void RequireNoOperands(const Options& options, absl::string_view command) {
  if (options.args.size() > 1) {
    throw UsageError{absl::StrCat("unexpected argument \"", options.args[1], "\" to ", command)};
  }
}

OutputFormat OutputOf(const Options& options, bool tables) {
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(options.output);
  if (!format.ok()) throw UsageError{std::string(format.status().message())};
  if (!tables && *format == OutputFormat::kWide) {
    throw UsageError{"-o wide is for tables; use json or yaml"};
  }
  return *format;
}

int Apply(const Options& options) {
  RequireNoOperands(options, "apply");
  if (options.files.empty()) throw UsageError{"apply needs -f FILE"};
  absl::StatusOr<std::vector<api::Resource>> resources = ReadManifests(options);
  if (!resources.ok()) return Fail(resources.status().message());

  // One request, so that the controller applies all of them or none.
  api::ApplyRequest request;
  for (api::Resource& resource : *resources) *request.add_resources() = std::move(resource);
  api::ApplyResponse response;
  auto context = NewContext();
  grpc::Status status = AdminStub(options)->Apply(context.get(), request, &response);
  if (!status.ok()) return FailRpc(status);
  const auto& applied = response.resources().empty() ? request.resources() : response.resources();
  for (const api::Resource& resource : applied) {
    const api::ResourceKey key = KeyOf(resource);
    std::cout << FindKind(key.kind())->display << "/" << key.name() << " configured\n";
  }
  return 0;
}

int Delete(const Options& options) {
  api::DeleteRequest request;
  if (!options.files.empty()) {
    RequireNoOperands(options, "delete -f");
    absl::StatusOr<std::vector<api::Resource>> resources = ReadManifests(options);
    if (!resources.ok()) return Fail(resources.status().message());
    for (const api::Resource& resource : *resources) *request.add_keys() = KeyOf(resource);
  } else {
    if (options.args.size() < 3) throw UsageError{"delete needs -f FILE, or KIND and NAME"};
    const KindInfo* info = FindKind(options.args[1]);
    if (info == nullptr) {
      throw UsageError{absl::StrCat("unknown kind \"", options.args[1], "\"")};
    }
    for (size_t i = 2; i < options.args.size(); ++i) {
      api::ResourceKey& key = *request.add_keys();
      key.set_kind(info->kind);
      key.set_name(options.args[i]);
      if (info->namespaced) {
        key.set_namespace_(options.ns.value_or(std::string(kDefaultNamespace)));
      }
    }
  }
  api::DeleteResponse response;
  auto context = NewContext();
  grpc::Status status = AdminStub(options)->Delete(context.get(), request, &response);
  if (!status.ok()) return FailRpc(status);
  for (const api::ResourceKey& key : request.keys()) {
    std::cout << FindKind(key.kind())->display << " \"" << key.name() << "\" deleted\n";
  }
  return 0;
}

int Get(const Options& options) {
  if (options.args.size() < 2) throw UsageError{"get needs a KIND"};
  const OutputFormat format = OutputOf(options, /*tables=*/true);
  std::vector<const KindInfo*> kinds;
  for (absl::string_view name : absl::StrSplit(options.args[1], ',', absl::SkipEmpty())) {
    const KindInfo* info = FindKind(name);
    if (info == nullptr) throw UsageError{absl::StrCat("unknown kind \"", name, "\"")};
    kinds.push_back(info);
  }
  if (kinds.empty()) throw UsageError{"get needs a KIND"};
  const std::vector<std::string> names(options.args.begin() + 2, options.args.end());
  if (!names.empty() && kinds.size() > 1) {
    throw UsageError{"names can be given with one kind only"};
  }
  if (!names.empty() && options.all_namespaces) {
    throw UsageError{"an object cannot be got by name across all namespaces"};
  }
  const std::string ns =
      options.all_namespaces ? "" : options.ns.value_or(std::string(kDefaultNamespace));

  auto stub = AdminStub(options);
  std::vector<api::Resource> resources;
  for (const KindInfo* info : kinds) {
    const std::string kind_namespace = info->namespaced ? ns : "";
    if (names.empty()) {
      api::ListRequest request;
      request.set_kind(info->kind);
      request.set_namespace_(kind_namespace);
      api::ListResponse response;
      auto context = NewContext();
      grpc::Status status = stub->List(context.get(), request, &response);
      if (!status.ok()) return FailRpc(status);
      for (api::Resource& resource : *response.mutable_resources()) {
        // Only what was asked for, whatever the controller's filter does.
        if (resource.kind_case() == info->kind_case) resources.push_back(std::move(resource));
      }
      continue;
    }
    for (const std::string& name : names) {
      api::ResourceKey key;
      key.set_kind(info->kind);
      key.set_namespace_(kind_namespace);
      key.set_name(name);
      api::Resource resource;
      auto context = NewContext();
      grpc::Status status = stub->Get(context.get(), key, &resource);
      if (!status.ok()) return FailRpc(status);
      resources.push_back(std::move(resource));
    }
  }

  switch (format) {
    case OutputFormat::kJson:
    case OutputFormat::kYaml:
      std::cout << RenderManifests(resources, format, /*as_list=*/names.size() != 1);
      break;
    case OutputFormat::kTable:
    case OutputFormat::kWide:
      if (resources.empty()) {
        const bool namespaced = kinds.front()->namespaced && kinds.size() == 1;
        std::cerr << "No resources found"
                  << (namespaced && !ns.empty() ? absl::StrCat(" in ", ns, " namespace") : "")
                  << ".\n";
        break;
      }
      std::cout << RenderTable(resources, format == OutputFormat::kWide, options.all_namespaces);
      break;
  }
  return 0;
}

int Status(const Options& options) {
  RequireNoOperands(options, "status");
  const OutputFormat format = OutputOf(options, /*tables=*/true);
  api::StatusResponse response;
  auto context = NewContext();
  grpc::Status status = AdminStub(options)->Status(context.get(), api::StatusRequest(), &response);
  if (!status.ok()) return FailRpc(status);
  std::cout << RenderStatus(response, format);
  return 0;
}

int Agent(const Options& options) {
  RequireNoOperands(options, "agent");
  const OutputFormat format = OutputOf(options, /*tables=*/false);
  if (options.socket.empty()) throw UsageError{"agent needs --socket PATH"};
  auto stub = api::AgentDebug::NewStub(grpc::CreateChannel(absl::StrCat("unix:", options.socket),
                                                           grpc::InsecureChannelCredentials()));
  api::AgentStateResponse response;
  auto context = NewContext();
  grpc::Status status = stub->State(context.get(), api::AgentStateRequest(), &response);
  if (!status.ok()) return FailRpc(status);
  std::cout << RenderAgentState(response, format);
  return 0;
}

int Run(int argc, char** argv) {
  try {
    const Options options = ParseCommandLine(argc, argv);
    if (options.help || (!options.args.empty() && options.args.front() == "help")) {
      std::cout << kUsage;
      return 0;
    }
    if (options.args.empty()) throw UsageError{"no command given"};
    const std::string& command = options.args.front();
    if (options.all_namespaces && command != "get") {
      throw UsageError{"-A is for get only"};
    }
    if (command == "apply") return Apply(options);
    if (command == "delete") return Delete(options);
    if (command == "get") return Get(options);
    if (command == "status") return Status(options);
    if (command == "agent") return Agent(options);
    throw UsageError{absl::StrCat("unknown command \"", command, "\"")};
  } catch (const UsageError& error) {
    std::cerr << "error: " << error.message << "\n\n" << kUsage;
    return kExitUsage;
  }
}

}  // namespace
}  // namespace atl::ctl

int main(int argc, char** argv) { return atl::ctl::Run(argc, argv); }
