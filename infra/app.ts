/**
 * The CDK app (`cdk.json` runs `node infra/app.ts`). Environment-agnostic: no account or region is
 * looked up, so it synthesizes offline; `cdk deploy` picks them from the caller's credentials. The
 * deployment's settings are the `descent:*` keys of `cdk.json`'s context (`infra/settings.ts`).
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DescentStack } from './descent-stack.ts';
import { readSettings } from './settings.ts';

const app = new App();
new DescentStack(app, 'DescentStack', {
  description:
    'descent: a model-training service (API, job queue, artifact bucket, GPU trainers, monitoring)',
  settings: readSettings(app.node),
});
// Synthesis fails on any cdk-nag AwsSolutions finding that is not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
