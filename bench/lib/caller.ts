/**
 * The benches call the service as a production caller does: it runs with CALLERS set and every
 * request carries this key, so the figures include checking it.
 */
export const BENCH_CALLER_KEY = "bench-caller-key-4f1d2c9a7be34e0f";

export const BENCH_CALLERS = JSON.stringify([{ name: "bench", key: BENCH_CALLER_KEY, methods: ["*"] }]);

export const AUTHORIZATION = `Bearer ${BENCH_CALLER_KEY}`;

/** For h2load's -H. */
export const AUTHORIZATION_HEADER = `authorization: ${AUTHORIZATION}`;
