#!/usr/bin/env node
// The `minkube` command runs straight from the TypeScript sources, so a checkout works right after `npm install`.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
