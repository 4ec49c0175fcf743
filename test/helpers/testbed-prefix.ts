import { randomBytes } from "node:crypto";

/**
 * A testbed prefix of this test run: `tag` (1-3 lowercase letters) and three random letters or digits, so two
 * test runs on one host (or a run after one killed before `down`) never meet in namespace or cgroup names.
 */
export function testbedPrefix(tag: string): string {
  if (!/^[a-z]{1,3}$/.test(tag)) throw new Error(`testbedPrefix: tag '${tag}' must be 1-3 lowercase letters`);
  const chars = "abcdefghijklmnopqrstuvwxyz0123456789";
  return tag + [...randomBytes(3)].map((b) => chars[b % chars.length]).join("");
}
