/**
 * Serving the policy being trained over an OpenAI-compatible API, recording
 * token-exact episodes and training on them with a recipe's stages.
 */
export * from "./chat-format.js"
export * from "./episodes.js"
export * from "./errors.js"
export * from "./facade.js"
export * from "./http.js"
export * from "./request.js"
export * from "./ServedPolicy.js"
export * from "./ServeOptions.js"
export * from "./ServeServer.js"
