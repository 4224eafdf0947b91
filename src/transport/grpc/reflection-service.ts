import {
  clone,
  create,
  createFileRegistry,
  type DescFile,
  type DescMessage,
  type DescService,
  toBinary,
} from "@bufbuild/protobuf";
import { type DescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import {
  ServerReflection,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { addGrpcService } from "./grpc-adapter.js";

/**
 * gRPC server reflection (v1, and v1alpha, which is wire-identical), answered from the exact
 * descriptors protobuf-es generated, so grpcurl and `buf curl` need no .proto files. Every
 * service it lists can be described, v1alpha's too (clients describe each before listing methods).
 */
export function addReflectionService(
  server: grpc.Server,
  services: readonly DescService[],
  /** Files clients need beyond the services' own, e.g. error detail messages. */
  extraFiles: readonly DescFile[] = [],
): void {
  const files = new Map<string, DescFile>();
  const addFile = (file: DescFile) => {
    if (files.has(file.name)) return;
    files.set(file.name, file);
    for (const dep of file.dependencies) addFile(dep);
  };
  const v1alpha = reflectionV1alpha();
  const all = [...services, ServerReflection, v1alpha];
  for (const service of all) addFile(service.file);
  for (const file of extraFiles) addFile(file);

  // Fully-qualified name -> the file that declares it (services, methods, messages, enums).
  const symbols = new Map<string, DescFile>();
  const addMessage = (message: DescMessage, file: DescFile) => {
    symbols.set(message.typeName, file);
    for (const nested of message.nestedMessages) addMessage(nested, file);
    for (const nested of message.nestedEnums) symbols.set(nested.typeName, file);
  };
  for (const file of files.values()) {
    for (const message of file.messages) addMessage(message, file);
    for (const enumeration of file.enums) symbols.set(enumeration.typeName, file);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
  }

  const encoded = new Map(
    [...files.values()].map((f) => [f.name, toBinary(FileDescriptorProtoSchema, f.proto)]),
  );
  /** The file and everything it imports, the file first (as the protocol asks). */
  const withDependencies = (file: DescFile): Uint8Array[] => {
    const seen = new Set<string>();
    const order: Uint8Array[] = [];
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      order.push(encoded.get(f.name) ?? new Uint8Array());
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return order;
  };
  const serviceNames = all.map((s) => s.typeName);

  function answer(request: ServerReflectionRequest): ServerReflectionResponse {
    const base = { validHost: request.host, originalRequest: request };
    const notFound = (what: string) =>
      create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: "errorResponse",
          value: { errorCode: grpc.status.NOT_FOUND, errorMessage: `${what} not found` },
        },
      });
    const filesOf = (file: DescFile | undefined, what: string) =>
      file
        ? create(ServerReflectionResponseSchema, {
            ...base,
            messageResponse: {
              case: "fileDescriptorResponse",
              value: { fileDescriptorProto: withDependencies(file) },
            },
          })
        : notFound(what);
    const req = request.messageRequest;
    switch (req.case) {
      case "listServices":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "listServicesResponse",
            value: { service: serviceNames.map((name) => ({ name })) },
          },
        });
      case "fileByFilename":
        return filesOf(files.get(req.value), `file ${req.value}`);
      case "fileContainingSymbol":
        return filesOf(symbols.get(req.value.replace(/^\./, "")), `symbol ${req.value}`);
      case "allExtensionNumbersOfType":
        return create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: req.value, extensionNumber: [] },
          },
        });
      default:
        return notFound("extension");
    }
  }

  const handler = (call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) => {
    call.on("data", (request: ServerReflectionRequest | symbol) => {
      if (typeof request === "symbol") return call.end();
      call.write(answer(request));
    });
    call.on("end", () => call.end());
  };
  addGrpcService(server, ServerReflection, {
    serverReflectionInfo: handler as grpc.handleBidiStreamingCall<unknown, unknown>,
  });
  // v1alpha: the same messages under the old package name.
  // v1alpha is served with v1's messages (the same on the wire) under its own path.
  addGrpcService(server, { ...ServerReflection, typeName: v1alpha.typeName } as DescService, {
    serverReflectionInfo: handler as grpc.handleBidiStreamingCall<unknown, unknown>,
  });
}

const V1 = "grpc.reflection.v1";
const V1ALPHA = "grpc.reflection.v1alpha";

/**
 * grpc.reflection.v1alpha.ServerReflection as a descriptor of its own: v1's file under v1alpha's
 * package and name (the messages are the same on the wire), so that it can be described too.
 */
function reflectionV1alpha(): DescService {
  const proto = clone(FileDescriptorProtoSchema, ServerReflection.file.proto);
  proto.name = "grpc/reflection/v1alpha/reflection.proto";
  proto.package = V1ALPHA;
  const rename = (typeName: string) => typeName.replace(`.${V1}.`, `.${V1ALPHA}.`);
  const renameFields = (message: DescriptorProto) => {
    for (const field of message.field) field.typeName = rename(field.typeName);
    for (const nested of message.nestedType) renameFields(nested);
  };
  for (const message of proto.messageType) renameFields(message);
  for (const service of proto.service) {
    for (const method of service.method) {
      method.inputType = rename(method.inputType);
      method.outputType = rename(method.outputType);
    }
  }
  const registry = createFileRegistry(proto, () => undefined); // the file imports nothing
  return registry.getService(`${V1ALPHA}.ServerReflection`) as DescService;
}
