// The grammar of an image reference as Docker parses it (distribution/reference: `[host[:port]/]path[:tag][@digest]`),
// checked where a task is submitted and again by the Docker runtime: a reference Docker would refuse, or one that
// cannot even go in a request path (a space, a control character, `;`), is a spec error, never a retried failure.

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|-+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const host = `(?:${domainComponent}(?:\\.${domainComponent})*|\\[[a-fA-F0-9:]+\\])`;
const domain = `${host}(?::[0-9]+)?`;
const name = `(?:${domain}/)?${pathComponent}(?:/${pathComponent})*`;
const tag = '[\\w][\\w.-]{0,127}';
const digest = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}';
const referencePattern = new RegExp(`^(${name})(?::${tag})?(?:@${digest})?$`);

/** Docker refuses a repository name (host and path) longer than this. */
const nameCharsMax = 255;

/** Null when Docker would accept image as a reference, else what it is instead, to follow `"<image>" is `. */
export function imageReferenceProblem(image: string): string | null {
  const match = referencePattern.exec(image);
  if (match === null) {
    return 'not an image reference ([host[:port]/]name[:tag][@digest], the name in lower case: letters, digits and . _ - separators)';
  }
  if ((match[1] ?? '').length > nameCharsMax) return `a reference whose name is longer than ${nameCharsMax} characters`;
  return null;
}
