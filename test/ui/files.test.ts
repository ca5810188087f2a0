// The dashboard's files (and the API explorer's, served the same way): a path that is not a file's path as it is
// spelled answers 400 INVALID_PARAM saying what is wrong with it (an outside tester got only "Forbidden"); a file
// the dashboard does not have is 404 NOT_FOUND.
import { afterAll, describe, expect, it } from 'vitest';
import { buildManagerApp } from '../../src/api/manager-app.js';
import { FakeManagerService } from '../api/fake-service.js';

const app = buildManagerApp({ service: new FakeManagerService() });
afterAll(() => app.close());

async function get(url: string) {
  const r = await app.inject({ method: 'GET', url });
  const json = String(r.headers['content-type'] ?? '').startsWith('application/json');
  return { status: r.statusCode, body: json ? (r.json() as unknown) : null };
}

const refused = (message: string) => ({ status: 400, body: { error: { code: 'INVALID_PARAM', message } } });

describe('paths the dashboard does not serve', () => {
  it.each([
    ['/ui/%5C', '"/ui/\\\\"', 'it holds a backslash'],
    ['/ui/a%5Cb.js', '"/ui/a\\\\b.js"', 'it holds a backslash'],
    ['/ui/vendor/preact/%5Cpreact.module.js', '"/ui/vendor/preact/\\\\preact.module.js"', 'it holds a backslash'],
    ['/ui/%00', '"/ui/\\u0000"', 'it holds a NUL byte'],
    ['/ui/app.js%00.map', '"/ui/app.js\\u0000.map"', 'it holds a NUL byte'],
    ['/ui//app.js', '"/ui//app.js"', "a file's path has no empty segment ('//') and no '.' or '..' segment"],
  ])('%s: 400 INVALID_PARAM saying why', async (url, shown, why) => {
    expect(await get(url)).toEqual(refused(`the path ${shown} is not one the dashboard serves: ${why}`));
  });

  it('a file it does not have is 404 NOT_FOUND, and its own files are served', async () => {
    expect(await get('/ui/nothere.js')).toEqual({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'no route GET /ui/nothere.js' } } });
    expect((await get('/ui/')).status).toBe(200);
  });

  it("the API explorer's files say the same", async () => {
    expect(await get('/docs/static/%5C')).toEqual(refused('the path "/docs/static/\\\\" is not one the API explorer serves: it holds a backslash'));
    expect((await get('/docs/static/swagger-initializer.js')).status).toBe(200);
  });
});
