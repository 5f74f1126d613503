/**
 * Every function of the addon's NativeApi in JavaScript, for the differential tests and the
 * micro-benchmark: production's `jsNative` (hashing, lookups, event formatting) plus the
 * reference response-head parser (head-parser.ts here).
 */
import { jsNative as production, type NativeApi } from '../../src/shared/native';
import { compactResponseHead, parseResponseHead } from './head-parser';

export const jsNative: NativeApi = Object.freeze({ ...production, parseResponseHead, compactResponseHead });
