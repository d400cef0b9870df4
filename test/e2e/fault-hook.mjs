// Preloaded with `node --import` by faults.test.ts: kills this process with SIGKILL at
// a chosen file-system event of a training run, so a test can interrupt a run at an
// exact point (timers would make the point depend on the machine's load).
//
// TURNWISE_TEST_KILL="<event>:<n>" kills at the n-th occurrence of <event>:
//   checkpoint-write   while a checkpoint is written: part of optimizer.safetensors is
//                      in the checkpoint's temporary directory, the rest never comes
//   latest-pointer     after a checkpoint directory is in place, before `latest` names it
import fs from "node:fs"
import { syncBuiltinESMExports } from "node:module"

const plan = process.env.TURNWISE_TEST_KILL
if (plan !== undefined && plan !== "") {
  const [event, countText] = plan.split(":")
  const at = Number(countText)
  let seen = 0
  const hit = (name) => name === event && ++seen === at
  const die = () => {
    process.kill(process.pid, "SIGKILL")
    // The signal is delivered at once; never run another instruction of the run meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
  }

  const open = fs.promises.open
  fs.promises.open = async function (file, flags, ...rest) {
    const name = String(file)
    if (flags === "w" && /[/\\]\.tmp-step-\d+-[0-9a-f]+[/\\]optimizer\.safetensors$/.test(name) && hit("checkpoint-write")) {
      fs.writeFileSync(name, Buffer.alloc(4096, 7))
      die()
    }
    return open.call(this, file, flags, ...rest)
  }

  const rename = fs.promises.rename
  fs.promises.rename = async function (from, to) {
    if (/[/\\]\.tmp-latest-[0-9a-f]+$/.test(String(from)) && hit("latest-pointer")) die()
    return rename.call(this, from, to)
  }

  syncBuiltinESMExports()
}
