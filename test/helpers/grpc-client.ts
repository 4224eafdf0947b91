import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  type HealthCheckResponse_ServingStatus,
} from "../../src/gen/grpc/health/v1/health_pb.js";
import { IdentityService } from "../../src/gen/identity/v1/identity_pb.js";
import { grpcMethodDefinition } from "../../src/wire/grpc-method.js";

type Methods = typeof IdentityService.method;

/** A real grpc-js client of IdentityService over a socket, promise-based for tests. */
export function createGrpcClient(address: string) {
  const definition = Object.fromEntries(
    IdentityService.methods.map((m) => [m.localName, grpcMethodDefinition(IdentityService, m)]),
  );
  const Client = grpc.makeGenericClientConstructor(definition as grpc.ServiceDefinition, "IdentityService");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (
      req: unknown,
      meta: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: unknown) => void,
    ) => void
  >;

  function call<K extends keyof Methods>(
    method: K,
    request: MessageInitShape<Methods[K]["input"]>,
    deadlineMs = 10_000,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    const desc = IdentityService.method[method];
    const message = create(desc.input as DescMessage, request as never);
    return new Promise((resolve, reject) => {
      const fn = client[method as string] as NonNullable<(typeof client)[string]>;
      fn.call(client, message, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res as MessageShape<Methods[K]["output"]>),
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
