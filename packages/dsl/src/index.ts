/**
 * @turnwise/dsl: training pipelines as typed Effect stages.
 *
 * Services (Policy, Sandbox, Tokenizer, MetricsSink, CheckpointStore) are declared
 * here and provided by @turnwise/runtime or by a host app's own Layers; recipes name
 * catalogue components; the pipeline is an Effect.
 */
export * from "./Catalogue.js"
export * from "./Config.js"
export * from "./Metrics.js"
export * from "./Pipeline.js"
export * as Recipe from "./Recipe.js"
export type { EncodedRecipe, RecipeSpec } from "./Recipe.js"
export type { Recipe as RecipeType } from "./Recipe.js"
export * from "./Rollout.js"
export * from "./services/CheckpointStore.js"
export * from "./services/MetricsSink.js"
export * from "./services/Policy.js"
export * from "./services/Sandbox.js"
export * from "./services/Tokenizer.js"
export * from "./ServiceStages.js"
export * from "./Stage.js"
export * from "./Task.js"
