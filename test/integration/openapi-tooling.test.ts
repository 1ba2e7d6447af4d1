import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../src/api/openapi.js';
import { startWorker } from '../../src/worker/worker.js';
import { ROOT, createTestEnv, silentLogger, startTestApi, type TestEnv } from '../support/test-env.js';

/**
 * What tools outside this repository make of the document: Redocly's linter (redocly.yaml) and a
 * client generated with openapi-typescript and called through openapi-fetch (test/typed-client).
 * Neither needs the network: both run from node_modules.
 */

// Inside the project, so that the generated client resolves openapi-fetch and @types/node from node_modules.
let work: string;
beforeAll(() => {
  mkdirSync(path.join(ROOT, 'node_modules/.cache'), { recursive: true });
  work = mkdtempSync(path.join(ROOT, 'node_modules/.cache/openapi-tooling-'));
  writeFileSync(path.join(work, 'openapi.json'), JSON.stringify(buildOpenApiDocument()));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; message: string; location: { pointer: string }[] }[];
}

describe('the OpenAPI document under a linter', () => {
  it("When linted with Redocly's recommended rules (redocly.yaml), then it has no error and no warning", () => {
    const result = spawnSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/@redocly/cli/bin/cli.js'),
        'lint',
        '--config',
        path.join(ROOT, 'redocly.yaml'),
        '--format',
        'json',
        path.join(work, 'openapi.json'),
      ],
      { cwd: ROOT, encoding: 'utf8', env: { ...process.env, REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
    );
    const report = JSON.parse(result.stdout) as LintReport;
    const problems = report.problems.map(
      (problem) => `${problem.ruleId} at ${problem.location[0]?.pointer}: ${problem.message}`,
    );
    expect(problems).toEqual([]);
    expect(report.totals).toEqual({ errors: 0, warnings: 0, ignored: 0 });
    expect(result.status, result.stderr).toBe(0);
  }, 60_000);
});

/** Casts and other ways around the type checker, in the client's own source. */
function escapeHatches(file: ts.SourceFile): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node) || ts.isNonNullExpression(node)) {
      found.push(node.getText(file));
    }
    if (node.kind === ts.SyntaxKind.AnyKeyword) found.push('any');
    ts.forEachChild(node, visit);
  };
  visit(file);
  if (/@ts-(ignore|expect-error|nocheck)/.test(file.text)) found.push('@ts- comment');
  return found;
}

async function generateClient(): Promise<string> {
  const types = astToString(await openapiTS(buildOpenApiDocument() as Parameters<typeof openapiTS>[0]));
  writeFileSync(path.join(work, 'wallet-api.ts'), types);
  writeFileSync(path.join(work, 'package.json'), JSON.stringify({ type: 'module' }));
  const client = path.join(work, 'client.ts');
  copyFileSync(path.join(ROOT, 'test/typed-client/client.ts'), client);
  return client;
}

describe('a client generated from the document', () => {
  let client: string;
  beforeAll(async () => {
    client = await generateClient();
  });

  it('When openapi-typescript generates its types, then a small openapi-fetch client typechecks against them strictly, with no casts', () => {
    const program = ts.createProgram([client], {
      strict: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      target: ts.ScriptTarget.ES2024,
      lib: ['lib.es2024.d.ts'],
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ['node'],
      noEmit: true,
      skipLibCheck: true,
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    expect(diagnostics).toEqual([]);
    expect(escapeHatches(program.getSourceFile(client)!)).toEqual([]);
  }, 60_000);

  describe('run against the API', () => {
    let env: TestEnv;
    let api: Awaited<ReturnType<typeof startTestApi>>;
    beforeAll(async () => {
      env = await createTestEnv('typed_client');
      api = await startTestApi(env);
    });
    afterAll(async () => {
      await api?.close();
      await env?.destroy();
    });

    it('When it creates a wallet, posts with Prefer: wait, reads the balance, lists and voids, then each call gets what its types promised', async () => {
      const worker = await startWorker(env.config, silentLogger);
      try {
        // Not spawnSync: the API answering the client runs in this process.
        const result = await promisify(execFile)(process.execPath, ['--import', 'tsx', client], {
          cwd: work,
          env: { ...process.env, BASE_URL: api.url, API_KEY: env.apiKey },
          timeout: 30_000,
        });
        const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!);
        expect(summary).toMatchObject({
          depositStatus: 201,
          deposit: 'applied',
          cents: 1000,
          listed: ['typed-client-1'],
          voidStatus: 201,
          reversal: { amount: -10 },
          notFound: { status: 404, type: '/problems/not-found' },
        });
        expect(typeof summary.walletId).toBe('number');
        expect(summary.reversal.voids).toMatch(/^[0-9a-f-]{36}$/);
      } finally {
        await worker.close();
      }
    }, 60_000);
  });
});
