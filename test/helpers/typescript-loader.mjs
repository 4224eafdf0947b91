// Registers tsx's TypeScript loader in a test process. vitest passes it to each test process with
// --import (vitest.config.ts), and worker threads inherit it, so the gRPC thread can load its
// TypeScript module the way production loads the built .js. (`--import tsx` alone is skipped in
// worker threads, hence this file.)
import { register } from "tsx/esm/api";

register();
