// The HttpClient shared by callers given none (as fetch shares undici's global dispatcher): plain HTTP, no token.
// A caller that needs TLS or a token passes an HttpClient of its own.
import { HttpClient } from './http.js';

let shared: HttpClient | undefined;

export function defaultHttpClient(): HttpClient {
  return (shared ??= new HttpClient());
}
