/**
 * @turnwise/sandbox: QuickJS (JavaScript) and Pyodide (Python) guests in worker
 * threads, the pool that runs them with deadlines, memory limits and isolation, and
 * the Layer that provides the DSL's Sandbox service.
 */
export * from "./limits.js"
export { languages, SandboxError } from "./observation.js"
export type { FailureKind, Language, Observation, SandboxRequest } from "./observation.js"
export * from "./pool.js"
export * as WorkerSandbox from "./WorkerSandbox.js"
