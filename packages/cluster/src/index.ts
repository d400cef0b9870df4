/**
 * @turnwise/cluster: rollouts on Effect cluster runners. Rollout workers are
 * cluster entities holding a policy copy and a sandbox pool; the learner publishes
 * policy versions as safetensors and trains on the groups they return.
 */
export * from "./AsyncClusterSteps.js"
export * from "./ClusterLoop.js"
export * from "./ClusterSettings.js"
export * from "./ClusterStep.js"
export * from "./Coordinator.js"
export * from "./FileRunnerStorage.js"
export * from "./FreePort.js"
export * from "./ImportanceCorrection.js"
export * from "./JoinedRunner.js"
export * from "./LocalRunners.js"
export * from "./PolicyVersions.js"
export * from "./rolloutHandler.js"
export * from "./RolloutTask.js"
export * from "./RolloutWorker.js"
export * from "./RunnerRecords.js"
export * from "./WorkerPolicy.js"
