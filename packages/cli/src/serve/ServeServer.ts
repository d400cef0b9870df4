/**
 * The listening endpoint as a service: the HTTP server over the {@link ServedPolicy},
 * started when its layer is built and closed when the layer's scope closes.
 *
 * @category services
 */
import { Context, Effect, Layer } from "effect"
import { startHttpServer } from "./http.js"
import type { HttpOptions, HttpServer } from "./http.js"
import { ServedPolicy } from "./ServedPolicy.js"

/** A listening endpoint: its URL and port. */
export interface ServeServerShape {
  /** Base URL of the OpenAI-compatible API (ends in /v1). */
  readonly url: string
  readonly port: number
}

/**
 * @example
 * const { url } = yield* ServeServer // inside a program given ServeServer.layer(...)
 */
export class ServeServer extends Context.Service<ServeServer, ServeServerShape>()("turnwise/cli/ServeServer") {
  /** Listen with `options` until the layer's scope closes. */
  static readonly layer = (options: HttpOptions): Layer.Layer<ServeServer, never, ServedPolicy> =>
    Layer.effect(
      ServeServer,
      Effect.gen(function*() {
        const served = yield* ServedPolicy
        const server: HttpServer = yield* Effect.acquireRelease(
          Effect.promise(() => startHttpServer(served, options)),
          (s) => Effect.promise(() => s.close()),
        )
        return { url: server.url, port: server.port }
      }),
    )
}
