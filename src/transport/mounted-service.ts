import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";

/** A service and its implementation, as both ports mount them (IdentityService, AdminService). */
export interface MountedService {
  service: DescService;
  // biome-ignore lint/suspicious/noExplicitAny: each entry pairs a service with its own impl.
  impl: Partial<ServiceImpl<any>>;
}

/** Pairs a service with its implementation, checked against each other. */
export const mount = <S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): MountedService => ({
  service,
  impl,
});
