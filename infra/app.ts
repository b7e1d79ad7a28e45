/**
 * The CDK app (`cdk.json` runs `node infra/app.ts`). Environment-agnostic: no account or region is
 * looked up, so it synthesizes offline; `cdk deploy` picks them from the caller's credentials.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { DescentStack } from './descent-stack.ts';

const app = new App();
new DescentStack(app, 'DescentStack', {
  description: 'descent: a model-training service (API, job queue, artifact bucket)',
});
// Synthesis fails on any cdk-nag AwsSolutions finding that is not acknowledged with a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
