import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  type HealthCheckResponse_ServingStatus,
} from "../../src/gen/grpc/health/v1/health_pb.js";
import { AdminService } from "../../src/gen/identity/v1/admin_pb.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { grpcMethodDefinition } from "../../src/wire/grpc-method.js";

/** A call of one of the service's methods, typed by the generated descriptor. */
type TypedCall<Methods extends Record<string, DescMethod>> = <K extends keyof Methods>(
  method: K,
  request: MessageInitShape<Methods[K]["input"]>,
  deadlineMs?: number,
  metadata?: Record<string, string>,
) => Promise<MessageShape<Methods[K]["output"]>>;

/** A real grpc-js client of IdentityService over a socket, promise-based for tests. */
export function createGrpcClient(address: string) {
  const client = createServiceGrpcClient(address, IdentityService);
  return { ...client, call: client.call as TypedCall<typeof IdentityService.method> };
}

/** The same for AdminService. */
export function createAdminGrpcClient(address: string) {
  const client = createServiceGrpcClient(address, AdminService);
  return { ...client, call: client.call as TypedCall<typeof AdminService.method> };
}

function createServiceGrpcClient(address: string, service: DescService) {
  const definition = Object.fromEntries(
    service.methods.map((m) => [m.localName, grpcMethodDefinition(service, m)]),
  );
  const Client = grpc.makeGenericClientConstructor(definition as grpc.ServiceDefinition, service.name);
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (
      req: unknown,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: unknown) => void,
    ) => void
  >;

  function call(
    method: string,
    request: unknown,
    deadlineMs = 10_000,
    metadata: Record<string, string> = {},
  ): Promise<unknown> {
    const desc = service.method[method] as DescMethod;
    const message = create(desc.input as DescMessage, request as never);
    const meta = new grpc.Metadata();
    for (const [key, value] of Object.entries(metadata)) meta.set(key, value);
    return new Promise((resolve, reject) => {
      const fn = client[method as string] as NonNullable<(typeof client)[string]>;
      fn.call(client, message, meta, { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  return {
    call,
    raw: client as unknown as grpc.Client,
    close: () => (client as unknown as grpc.Client).close(),
  };
}

/** The google.rpc.ErrorInfo reason carried in a grpc-js error's trailers, if any. */
export { reasonOfGrpcError as grpcReason } from "../../src/client/verifier.js";

/** grpc.health.v1 Check of the whole server, on a connection of its own. */
export async function grpcHealth(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): Promise<HealthCheckResponse_ServingStatus> {
  const check = grpcMethodDefinition(Health, Health.method.check);
  const client = new grpc.Client(address, credentials);
  try {
    const response = await new Promise<HealthCheckResponse>((resolve, reject) =>
      client.makeUnaryRequest(
        check.path,
        check.requestSerialize,
        check.responseDeserialize,
        create(HealthCheckRequestSchema, { service: "" }),
        new grpc.Metadata(),
        { deadline: Date.now() + 5000 },
        (err, res) => (err ? reject(err) : resolve(res as HealthCheckResponse)),
      ),
    );
    return response.status;
  } finally {
    client.close();
  }
}
