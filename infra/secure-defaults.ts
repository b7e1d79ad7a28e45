/**
 * The secure defaults of every construct in infra/, kept in one place (Solutions Constructs' habit).
 * A construct builds its resource from `withDefaults(xxxDefaults(...), props.xxxProps)`: the caller's
 * props win, so a caller *can* weaken a default, and the cdk-nag test is what catches it.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  AccountRecovery,
  FeaturePlan,
  Mfa,
  type OAuthScope,
  type UserPoolClientOptions,
  type UserPoolProps,
} from 'aws-cdk-lib/aws-cognito';
import { BlockDeviceVolume, EbsDeviceVolumeType, type LaunchTemplateProps } from 'aws-cdk-lib/aws-ec2';
import type { IKey, KeyProps } from 'aws-cdk-lib/aws-kms';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  BlockPublicAccess,
  BucketEncryption,
  type BucketProps,
  HttpMethods,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import type { TopicProps } from 'aws-cdk-lib/aws-sns';
import { QueueEncryption, type QueueProps } from 'aws-cdk-lib/aws-sqs';

/**
 * Merges `overrides` over `defaults`, one level deep. A key the caller left `undefined` keeps its
 * default, so `{ ...props }` spreads of optional props never erase a secure setting by accident.
 */
export function withDefaults<T extends object>(defaults: T, overrides: Partial<T> = {}): T {
  const merged: T = { ...defaults };
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}

/** A customer-managed KMS key that rotates yearly and survives a stack deletion (the data it protects does). */
export function encryptionKeyDefaults(description: string): KeyProps {
  return { description, enableKeyRotation: true, removalPolicy: RemovalPolicy.RETAIN };
}

/** Days after which S3 aborts an incomplete multipart upload (a dataset upload that never finished). */
export const ABORT_INCOMPLETE_UPLOADS_AFTER = Duration.days(7);

/**
 * Every change to a job record is a compare-and-swap write, so a versioned bucket collects many
 * noncurrent versions of `job.json`: they are kept this long for recovery, then expire.
 */
export const NONCURRENT_VERSIONS_EXPIRE_AFTER = Duration.days(30);

/**
 * The artifact bucket: SSE-KMS with a bucket key, TLS 1.2+ only, all public access blocked, ACLs off,
 * versioned, kept when the stack is deleted, and CORS for browsers that upload with a presigned PUT
 * or download with a presigned GET.
 */
export function artifactBucketDefaults(
  encryptionKey: IKey,
  serverAccessLogsBucket: BucketProps['serverAccessLogsBucket'],
  corsAllowedOrigins: readonly string[],
  noncurrentVersionExpiration: Duration = NONCURRENT_VERSIONS_EXPIRE_AFTER,
): BucketProps {
  return {
    encryption: BucketEncryption.KMS,
    encryptionKey,
    bucketKeyEnabled: true,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
    versioned: true,
    removalPolicy: RemovalPolicy.RETAIN,
    serverAccessLogsBucket,
    serverAccessLogsPrefix: 'artifacts/',
    lifecycleRules: [
      {
        id: 'abort-incomplete-multipart-uploads',
        abortIncompleteMultipartUploadAfter: ABORT_INCOMPLETE_UPLOADS_AFTER,
      },
      {
        id: 'expire-noncurrent-versions',
        noncurrentVersionExpiration,
      },
    ],
    cors: [
      {
        allowedMethods: [HttpMethods.PUT, HttpMethods.GET, HttpMethods.HEAD],
        allowedOrigins: [...corsAllowedOrigins],
        allowedHeaders: ['*'],
        exposedHeaders: ['ETag'],
        maxAge: Duration.hours(1).toSeconds(),
      },
    ],
  };
}

/**
 * The bucket that receives the artifact bucket's S3 server access logs. S3 log delivery supports
 * only SSE-S3 on the target bucket, not SSE-KMS; everything else is as strict as the artifact bucket.
 */
export function accessLogsBucketDefaults(): BucketProps {
  return {
    encryption: BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    minimumTLSVersion: 1.2,
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
    removalPolicy: RemovalPolicy.RETAIN,
    lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(365) }],
  };
}

/** Longest SQS retention: a job may wait for a GPU a long time, and a dropped message is a lost job. */
export const QUEUE_RETENTION = Duration.days(14);

/** A queue encrypted with a customer-managed key (so access needs a KMS grant too) and TLS only. */
export function queueDefaults(encryptionMasterKey: IKey): QueueProps {
  return {
    encryption: QueueEncryption.KMS,
    encryptionMasterKey,
    enforceSSL: true,
    retentionPeriod: QUEUE_RETENTION,
  };
}

/** Settings that every descent Lambda function shares unless its props say otherwise (see `DescentFunction`). */
export interface FunctionSettings {
  readonly timeout: Duration;
  readonly memorySize: number;
  readonly logRetention: RetentionDays;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
}

export const functionDefaults: FunctionSettings = {
  // API Gateway HTTP APIs give up on an integration after 30 seconds; a handler only reads and writes S3.
  timeout: Duration.seconds(10),
  memorySize: 512,
  logRetention: RetentionDays.ONE_MONTH,
  logLevel: 'info',
};

/**
 * The user pool that issues API tokens. Machines only: nobody signs up or signs in with a password.
 * The password and MFA policies are the strictest anyway, so that a user added by hand later is still
 * well protected, and the pool (with its tenants' app clients) survives a stack deletion.
 */
export function userPoolDefaults(): UserPoolProps {
  return {
    selfSignUpEnabled: false,
    featurePlan: FeaturePlan.ESSENTIALS,
    passwordPolicy: {
      minLength: 14,
      requireLowercase: true,
      requireUppercase: true,
      requireDigits: true,
      requireSymbols: true,
    },
    mfa: Mfa.REQUIRED,
    mfaSecondFactor: { otp: true, sms: false },
    accountRecovery: AccountRecovery.NONE,
    removalPolicy: RemovalPolicy.RETAIN,
  };
}

/** A tenant's app client: client-credentials grant only, with a secret, revocable, one-hour tokens. */
export function appClientDefaults(scopes: OAuthScope[]): UserPoolClientOptions {
  return {
    generateSecret: true,
    oAuth: { flows: { clientCredentials: true }, scopes },
    enableTokenRevocation: true,
    preventUserExistenceErrors: true,
    accessTokenValidity: Duration.hours(1),
  };
}

/** Steady-state and burst request limits of the API's default stage, per account and region. */
export const apiThrottleDefaults = { rateLimit: 50, burstLimit: 100 } as const;

/**
 * The GPU instances' launch template: IMDSv2 only, with a hop limit of 1 so that containers on the
 * bridge network cannot reach the instance role's credentials, and an encrypted gp3 root volume (the
 * trainer image and its CUDA libraries live there).
 */
export function gpuLaunchTemplateDefaults(rootVolumeGiB: number): LaunchTemplateProps {
  return {
    requireImdsv2: true,
    httpPutResponseHopLimit: 1,
    blockDevices: [
      {
        deviceName: '/dev/xvda',
        volume: BlockDeviceVolume.ebs(rootVolumeGiB, {
          encrypted: true,
          volumeType: EbsDeviceVolumeType.GP3,
          deleteOnTermination: true,
        }),
      },
    ],
  };
}

/** A topic encrypted with a customer-managed key (CloudWatch can publish to it; the AWS-managed key refuses) and TLS only. */
export function topicDefaults(masterKey: IKey): TopicProps {
  return { masterKey, enforceSSL: true };
}
