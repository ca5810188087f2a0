// Where every command gets its API client: one HTTP pool for the whole process, built in one place, so that TLS
// material and a token (a credentials file, later) are read here and nowhere else.
import { ApiClient, type ApiClientOptions } from '../client/api-client.js';
import { HttpClient } from '../client/http.js';

/** What a command may choose per client; how to connect (TLS, token, pool) is this module's business. */
export type CliClientOptions = Pick<ApiClientOptions, 'timeoutMs' | 'readRetries'>;

let http: HttpClient | undefined;

/** The process's one pool: plain HTTP today; the credentials file's CA, client certificate and token go here. */
export function cliHttpClient(): HttpClient {
  return (http ??= new HttpClient());
}

/** A client of the manager at baseUrl ('host:port' or a URL, as --api / MINKUBE_API give it). */
export function apiClientFor(baseUrl: string, opts: CliClientOptions = {}): ApiClient {
  return new ApiClient(baseUrl, { ...opts, http: cliHttpClient() });
}
