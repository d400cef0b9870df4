/**
 * Serving the policy being trained over an OpenAI-compatible API, recording
 * token-exact episodes and training on them with a recipe's stages.
 */
export * from "./errors.js"
export * from "./request.js"
export * from "./chat-format.js"
export * from "./episodes.js"
export * from "./ServedPolicy.js"
export * from "./http.js"
export * from "./ServeServer.js"
export * from "./ServeOptions.js"
export * from "./facade.js"
