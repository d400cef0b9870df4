/**
 * The code that grades a submission in the sandbox: a harness cell, the submission
 * cell, then one cell per hidden test, all in one sandbox session.
 *
 * Why this shape:
 * - The harness runs first, so the `assert` helpers it defines hold the pristine
 *   built-ins even if the submission later replaces `Object.keys` or `JSON`.
 * - The submission runs before any test exists in the interpreter, as its own cell:
 *   it cannot read the tests' text, and in JavaScript the tests run inside a
 *   strict-mode function whose locals (the `assert` binding, the pass token) no
 *   function of the submission can reach (`f.caller` is null for strict callers).
 * - Each test is its own cell with its own deadline, so a submission that hangs on
 *   one input loses that test, not the others.
 * - A test reports success by returning a random token the host chose for that test
 *   (see grade.ts). The submission never sees the token, so it cannot forge a pass
 *   by printing, by throwing, or by replacing the functions that format the result.
 *
 * Python has no in-process isolation a guest cannot walk around (frames,
 * `gc.get_objects()`), so there the guarantees are narrower: the tests are not in the
 * interpreter while the submission is defined, they run in a namespace of their own
 * that holds only the entry point, and a pass still needs the host's token. A
 * submission that deliberately inspects its caller's frame during a test could see
 * that test's constants; docs/NOTES.md says so.
 *
 * @category internals
 */

/** The language of a submission and its tests. */
export type CodeLanguage = "js" | "python"

/** The harness cell for JavaScript: `__turnwiseHarness.assert`, built from captured built-ins. */
const jsHarness = `const __turnwiseHarness = (() => {
  "use strict"
  const apply = Reflect.apply, keys = Object.keys, isArray = Array.isArray, protoOf = Object.getPrototypeOf
  const hasOwn = Object.prototype.hasOwnProperty, freeze = Object.freeze, stringify = JSON.stringify, Err = Error
  const show = (v) => { try { const s = stringify(v); return s === undefined ? typeof v : s } catch (e) { return typeof v } }
  const same = (a, b) => a === b || (a !== a && b !== b)
  const equal = (a, b, depth) => {
    if (same(a, b)) return true
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null || depth > 64) return false
    if (protoOf(a) !== protoOf(b)) return false
    if (isArray(a)) {
      if (!isArray(b) || a.length !== b.length) return false
      for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i], depth + 1)) return false
      return true
    }
    const ka = keys(a), kb = keys(b)
    if (ka.length !== kb.length) return false
    for (let i = 0; i < ka.length; i++) {
      const k = ka[i]
      if (!apply(hasOwn, b, [k]) || !equal(a[k], b[k], depth + 1)) return false
    }
    return true
  }
  const assert = (condition, message) => { if (!condition) throw new Err(message === undefined ? "assertion failed" : message) }
  assert.equal = (actual, expected) => { if (!same(actual, expected)) throw new Err("expected " + show(expected) + ", got " + show(actual)) }
  assert.deepEqual = (actual, expected) => { if (!equal(actual, expected, 0)) throw new Err("expected " + show(expected) + ", got " + show(actual)) }
  return freeze({ assert: freeze(assert) })
})()
undefined`

/** The harness cell for Python: `__turnwise_run(test, entry, token)` runs one test in its own namespace. */
const pythonHarness = `def __turnwise_make():
    import builtins
    _exec, _repr, _type, _BaseException, _dict = exec, repr, type, BaseException, dict
    module = globals()
    def run(test, entry, token):
        namespace = _dict(__builtins__=builtins)
        if entry in module:
            namespace[entry] = module[entry]
        try:
            _exec(test, namespace)
        except _BaseException as e:
            return "-" + _type(e).__name__ + ": " + str(e)[:200]
        return token
    return run
__turnwise_run = __turnwise_make()
del __turnwise_make`

/** The cell that defines the grading helpers (run first in the session). */
export const harnessCell = (language: CodeLanguage): string => (language === "js" ? jsHarness : pythonHarness)

/**
 * The cell that runs one hidden test; its value contains `token` exactly when the
 * test passed, and otherwise starts with "-" and the failure message.
 */
export const testCell = (language: CodeLanguage, test: string, entryPoint: string, token: string): string =>
  language === "js"
    ? `(() => {
  "use strict"
  const assert = __turnwiseHarness.assert
  try {
${test}
  } catch (e) {
    let message = "error"
    try { message = String(e && e.message !== undefined ? e.message : e) } catch (_) {}
    return "-" + message.slice(0, 200)
  }
  return ${JSON.stringify(token)}
})()`
    : `__turnwise_run(${JSON.stringify(test)}, ${JSON.stringify(entryPoint)}, ${JSON.stringify(token)})`

/**
 * The submitted code inside an `<answer>` block: the text itself, or the body of a
 * fenced block when the policy wrapped its code in one.
 *
 * @example
 * submissionCode("```js\nfunction f(){}\n```") // "function f(){}"
 */
export const submissionCode = (answer: string): string => {
  const fenced = /^```[A-Za-z0-9_+-]*[ \t]*\n([\s\S]*?)\n?```$/.exec(answer.trim())
  return (fenced?.[1] ?? answer).trim()
}
