import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import { addGrpcService } from "./grpc-adapter.js";

export interface HealthStatus {
  setStatus(service: string, status: "SERVING" | "NOT_SERVING"): void;
}

/**
 * grpc.health.v1 (Check and Watch) for the given service names ("" is the whole server). Load
 * balancers and Kubernetes probes use it; a draining server reports NOT_SERVING.
 */
export function addHealthService(server: grpc.Server, services: readonly string[]): HealthStatus {
  const statuses = new Map<string, ServingStatus>(services.map((s) => [s, ServingStatus.NOT_SERVING]));
  const watchers = new Map<string, Set<(status: ServingStatus) => void>>();
  const response = (status: ServingStatus): HealthCheckResponse =>
    create(HealthCheckResponseSchema, { status });

  addGrpcService(server, Health, {
    check: ((call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback) => {
      const status = statuses.get(call.request.service);
      if (status === undefined)
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
      else callback(null, response(status));
    }) as grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse>,
    watch: ((call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const name = call.request.service;
      const send = (status: ServingStatus) => call.write(response(status));
      send(statuses.get(name) ?? ServingStatus.SERVICE_UNKNOWN);
      const set = watchers.get(name) ?? new Set();
      watchers.set(name, set);
      set.add(send);
      call.on("cancelled", () => set.delete(send));
    }) as grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>,
  });

  return {
    setStatus(service, status) {
      const value = status === "SERVING" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      if (statuses.get(service) === value) return;
      statuses.set(service, value);
      for (const send of watchers.get(service) ?? []) send(value);
    },
  };
}
