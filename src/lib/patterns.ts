// The patterns names and paths follow across the API, the commands and the config (service names and namespaces as
// DNS labels, port names, health check paths), each with its rule in words: what a 400 says instead of the regular
// expression (schema-problems.ts). A schema that uses one of these patterns gets the words without saying them.

/** A DNS label: a service's name (`<name>.service.minkube`), a namespace. */
export const dnsLabelPattern = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const dnsLabelRule = "1 to 63 lower-case letters, digits or '-', not starting or ending with '-'";

/** A port's name, as SRV records and environment names (MINKUBE_PORT_<NAME>, '-' as '_') take it. */
export const portNamePattern = '^[a-z][a-z0-9-]{0,14}$';
export const portNameRule = "a lower-case letter, then up to 14 lower-case letters, digits or '-'";

/** An http health check's path. */
export const httpPathPattern = '^/[\\x21-\\x7e]*$';
export const httpPathRule = "'/' then printable ASCII characters, no spaces";

/** A node's id (a manager's, a worker's: the config's and POST /v1/join's) and a task's. */
export const idPattern = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
export const idRule = "a letter or digit, then letters, digits, '.', '_' or '-'";

/** A list's cursor where it is a task id or any position between them. */
export const cursorPattern = '^[A-Za-z0-9._-]+$';
export const cursorRule = "letters, digits, '.', '_' or '-'";

/** A worker's API address as it registers it: host:port, checked further by the registration. */
export const hostPortPattern = '^[^\\s/]+:[0-9]{1,5}$';
export const hostPortRule = "a host (no spaces or '/'), ':', then a port of 1 to 5 digits";

/** A worker process's instance, which it makes itself. */
export const instancePattern = '^[A-Za-z0-9_-]+$';
export const instanceRule = "letters, digits, '_' or '-'";

/** An API token's name. */
export const tokenNamePattern = '^[A-Za-z0-9][A-Za-z0-9._@-]*$';
export const tokenNameRule = "a letter or digit, then letters, digits, '.', '_', '@' or '-'";

/** A custom policy's name, which becomes its tokens' role; the built-in roles' names follow it too. */
export const policyNamePattern = '^[a-z][a-z0-9-]{0,62}$';
export const policyNameRule = "a lower-case letter, then up to 62 lower-case letters, digits or '-'";

/** A key prefix: the characters of a key (src/contracts/keys.ts). */
export const keyPrefixPattern = '^[A-Za-z0-9._~/-]+$';
export const keyPrefixRule = "letters, digits, '.', '_', '~', '/' or '-'";

/** An API token's accessor (src/security/tokens.ts), and a join token's. */
export const accessorPattern = '^[0-9a-f]{16}$';
export const accessorRule = '16 lower-case hex digits';
export const joinTokenAccessorPattern = '^join-[0-9a-f]{16}$';
export const joinTokenAccessorRule = "'join-' then 16 lower-case hex digits";

/** An Idempotency-Key header's value. */
export const idempotencyKeyPattern = '^[\\x21-\\x7e]+$';
export const idempotencyKeyRule = 'printable ASCII characters, no spaces';

/** A container engine's identity as a worker registers it (`docker:<ID>`, src/runtime/docker.ts). */
export const engineIdentityPattern = '^[\\x21-\\x7e]{1,128}$';
export const engineIdentityRule = 'printable ASCII characters, no spaces';
