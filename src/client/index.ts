// The one HTTP client (see http.ts) and the managers' API client built on it.
export { ApiClient, type ApiClientOptions, type RequestOptions, type SubmitOptions, type SubmitTasksOptions, type SubmittedTask } from './api-client.js';
export { defaultHttpClient } from './default.js';
export {
  baseUrlProblem,
  errorFromResponse,
  HttpClient,
  isPlainHttp,
  normaliseBaseUrl,
  type HttpBytesResponse,
  type HttpClientOptions,
  type HttpRequest,
  type HttpResponse,
  type HttpTextResponse,
  type TlsMaterial,
} from './http.js';
