/**
 * Node's arguments for a child process that runs the CLI from its TypeScript source (`src/cli.ts`,
 * spawned with the repository root as its working directory, where `tsx` resolves).
 *
 * tsx (esbuild) rather than tap's own loader (process.execArgv: ts-node, which loads the TypeScript
 * compiler into every child): a start of `src/cli.ts verify-proof` took 9-12 s with tap's loader and
 * 1.9 s with tsx on the 2-core machine, and the tests that start the CLI (the proof CLI, imports,
 * crash recovery, kill -9) spend most of their time starting it: proof.test.ts took 147 s of its
 * 240 s timeout in one CI run with four test files at once.
 */
export const TS_CHILD_ARGS: readonly string[] = ['--enable-source-maps', '--import', 'tsx']
