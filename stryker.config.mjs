// Mutation testing of the pure decision modules (`make mutate`; not part of CI: too slow).
// Each module is listed once, with the test files that pin it down; every mutant is run against
// only its own module's test files. `make mutate MODULES=lib/paths.ts` narrows a run.
/* global process */
const MODULES = {
  'lib/paths.ts': ['test/paths.test.ts'],
  'lib/secrets.ts': ['test/secrets.test.ts'],
  'lib/workflow.ts': ['test/workflow.test.ts'],
  'lib/phases.ts': ['test/phases.test.ts'],
  'lib/route.ts': ['test/route.test.ts'],
  'lib/retry.ts': ['test/retry.test.ts'],
  'lib/backoff.ts': ['test/backoff.test.ts'],
}

const wanted = (process.env.MODULES ?? '').split(/[\s,]+/).filter(Boolean)
for (const m of wanted) {
  if (!(m in MODULES))
    throw new Error(`MODULES: ${m} is not a mutated module; pick from ${Object.keys(MODULES).join(', ')} (or add it in stryker.config.mjs)`)
}
const mutate = wanted.length > 0 ? wanted : Object.keys(MODULES)

/** @type {import('./mutate/node_modules/@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate,
  testRunner: 'command',
  // Each mutant runs only its own module's test files (test/mutant-tests.sh picks them).
  commandRunner: { command: `bash test/mutant-tests.sh ${mutate.map((m) => `${m}=${MODULES[m].join(',')}`).join(' ')}` },
  reporters: ['clear-text', 'progress', 'html'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  clearTextReporter: { allowColor: true, logTests: false, reportMutants: true, reportScoreTable: true },
  thresholds: { high: 85, low: 70, break: 85 },
  // Copied into .stryker-tmp/sandbox-*: the project without the engine CLIs, Stryker itself or demo leftovers (node_modules is symlinked).
  ignorePatterns: ['/engines/node_modules', '/mutate/node_modules', '/.factory-demo', '/tmp', '/reports'],
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
}
