/**
 * Synthesizes DescentStack as `cdk synth` does (cdk.json's context: feature flags and `descent:*`
 * settings), but fast: no Lambda bundling (the bundle test does that) and no built-in CloudFormation
 * validation (`npm run synth` runs it in CI).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { DescentStack, type DescentStackProps } from '../../infra/descent-stack.ts';
import { readSettings } from '../../infra/settings.ts';

export interface CfnResource {
  readonly Type: string;
  readonly Properties: Record<string, unknown>;
  readonly DependsOn?: string | string[];
}

export interface PolicyStatement {
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource: unknown;
  readonly Condition?: unknown;
}

export const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

/** An app with cdk.json's context (plus `context`), as `cdk synth` builds it, minus bundling and validation. */
export function newApp(context: Record<string, unknown> = {}): App {
  const outdir = mkdtempSync(join(tmpdir(), 'descent-cdk-'));
  process.once('exit', () => rmSync(outdir, { recursive: true, force: true }));
  return new App({
    outdir,
    builtinCloudFormationValidation: false,
    context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [], ...context },
  });
}

/** DescentStack with the settings of cdk.json (overridden by `context`), and ways to look into it. */
export function synthesize(props: DescentStackProps = {}, context: Record<string, unknown> = {}) {
  const app = newApp(context);
  const stack = new DescentStack(app, 'DescentStack', { settings: readSettings(app.node), ...props });
  const template = Template.fromStack(stack);
  const resources = template.toJSON().Resources as Record<string, CfnResource>;
  const logicalId = (element: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(element.node.defaultChild as CfnElement);
  return { app, stack, template, resources, logicalId };
}

export function resourcesOfType(
  resources: Record<string, CfnResource>,
  type: string,
): [string, CfnResource][] {
  return Object.entries(resources).filter(([, r]) => r.Type === type);
}

/** The statements of the IAM policies attached to the role with logical id `roleId`. */
export function statementsOfRole(resources: Record<string, CfnResource>, roleId: string): PolicyStatement[] {
  return resourcesOfType(resources, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: PolicyStatement[] }).Statement);
}

/** `Action` as a sorted list. */
export const actionsOf = (statement: PolicyStatement): string[] => [statement.Action].flat().sort();
