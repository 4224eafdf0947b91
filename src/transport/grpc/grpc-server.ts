import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";
import { Health as HealthService } from "../../gen/grpc/health/v1/health_pb.js";
import type { CallerAuth } from "../caller-auth.js";
import { addConnectService } from "./grpc-adapter.js";
import { addHealthService, type HealthStatus } from "./health-service.js";
import { addReflectionService } from "./reflection-service.js";

export interface GrpcServerOptions<S extends DescService> {
  service: S;
  impl: Partial<ServiceImpl<S>>;
  maxReceiveBytes: number;
  /** When given, the service's calls must come from allowed callers; health and reflection stay open. */
  callerAuth?: CallerAuth;
}

export interface GrpcServer {
  server: grpc.Server;
  health: HealthStatus;
  listen(host: string, port: number): Promise<number>;
  /** Stops taking calls, lets running ones finish (up to graceMs), then closes. */
  stop(graceMs: number): Promise<void>;
}

export function createGrpcServer<S extends DescService>(options: GrpcServerOptions<S>): GrpcServer {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxReceiveBytes,
    "grpc.max_send_message_length": 4 * 1024 * 1024,
    // channelz bookkeeping runs on every call (docs/benchmarks.md) and nothing here reads it.
    "grpc.enable_channelz": 0,
  });
  addConnectService(server, options.service, options.impl, options.callerAuth);

  const health = addHealthService(server, ["", options.service.typeName]);
  // grpcurl and `buf curl` discover the API through reflection (v1 and v1alpha).
  addReflectionService(server, [options.service, HealthService], [file_google_rpc_error_details]);

  return {
    server,
    health,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
          err ? reject(err) : resolve(boundPort),
        );
      }),
    stop: (graceMs) =>
      new Promise((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
