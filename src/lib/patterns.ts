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
