import { type CfnElement, type Duration, Stack, Validations } from 'aws-cdk-lib';
import type { ContainerDefinition } from 'aws-cdk-lib/aws-ecs';
import { type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import type { Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Bucket, type BucketProps, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ENV } from '../core/platform/config.ts';
import {
  accessLogsBucketDefaults,
  artifactBucketDefaults,
  encryptionKeyDefaults,
  NONCURRENT_VERSIONS_EXPIRE_AFTER,
  withDefaults,
} from './secure-defaults.ts';

/** Every object descent writes lives under this prefix (see `core/platform/keys.ts`); grants stop there. */
export const OBJECT_PREFIX = 'tenants/';

export interface ArtifactBucketProps {
  /**
   * The KMS key that encrypts the objects.
   * @default - a new customer-managed key with yearly rotation
   */
  readonly encryptionKey?: IKey;
  /**
   * Where S3 writes the bucket's server access logs.
   * @default - a new SSE-S3 encrypted, private, TLS-only bucket that keeps logs for a year
   */
  readonly serverAccessLogsBucket?: IBucket;
  /**
   * Origins allowed to PUT (upload) and GET (download) through presigned URLs from a browser.
   * @default ['*'] - any origin: the presigned URL itself is the credential, and it expires
   */
  readonly corsAllowedOrigins?: readonly string[];
  /**
   * How long an overwritten or deleted object (an old checkpoint, an earlier version of a job record, a
   * purged job's files) is kept before it expires.
   * @default Duration.days(30)
   */
  readonly noncurrentVersionExpiration?: Duration;
  /**
   * Overrides of the bucket's secure defaults (`artifactBucketDefaults` in `secure-defaults.ts`).
   * @default - none
   */
  readonly bucketProps?: BucketProps;
}

/**
 * The S3 bucket that holds datasets, job records, checkpoints, models and reports: SSE-KMS, TLS only,
 * no public access, versioned (so a bad compare-and-swap write can be undone), with server access logs.
 */
/** The checkpoint objects of every job (`core/platform/keys.ts`: tenants/{t}/jobs/{id}/checkpoints/…). */
const CHECKPOINT_OBJECTS = `${OBJECT_PREFIX}*/jobs/*/checkpoints/*`;
/** The active-jobs quota's slots (`core/jobs/active-jobs.ts`): a trainer frees its job's when the job ends. */
const ACTIVE_SLOT_OBJECTS = `${OBJECT_PREFIX}*/active-slots/*`;

export class ArtifactBucket extends Construct {
  /** The artifact bucket. */
  public readonly bucket: Bucket;
  /** The key that encrypts the artifact bucket's objects. */
  public readonly encryptionKey: IKey;
  /** The bucket that receives the artifact bucket's server access logs. */
  public readonly accessLogsBucket: IBucket;

  constructor(scope: Construct, id: string, props: ArtifactBucketProps = {}) {
    super(scope, id);
    this.encryptionKey =
      props.encryptionKey ??
      new Key(this, 'Key', encryptionKeyDefaults('Encrypts the descent artifact bucket'));
    this.accessLogsBucket =
      props.serverAccessLogsBucket ?? new Bucket(this, 'AccessLogs', accessLogsBucketDefaults());
    this.bucket = new Bucket(
      this,
      'Bucket',
      withDefaults(
        artifactBucketDefaults(
          this.encryptionKey,
          this.accessLogsBucket,
          props.corsAllowedOrigins ?? ['*'],
          props.noncurrentVersionExpiration ?? NONCURRENT_VERSIONS_EXPIRE_AFTER,
        ),
        props.bucketProps,
      ),
    );
  }

  /**
   * Lets `fn` read, write, list and delete objects under `tenants/` (and sign URLs that do the same),
   * with the KMS permissions that needs, and sets `DESCENT_BUCKET` on it. Object versions stay out of
   * reach: no `s3:DeleteObjectVersion`, so a purged object can still be recovered for 30 days.
   */
  grantReadWriteTo(fn: LambdaFunction): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload'],
        resources: [this.bucket.arnForObjects(`${OBJECT_PREFIX}*`)],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
    );
    // GenerateDataKey to write (and to sign presigned PUTs), Decrypt to read and to finish multipart uploads.
    this.encryptionKey.grant(fn, 'kms:Decrypt', 'kms:GenerateDataKey');
    fn.addEnvironment(ENV.bucket, this.bucket.bucketName);
    if (fn.role) this.acknowledgePrefixGrant(fn.role);
  }

  /**
   * Lets a trainer task read datasets and job records and write job records, checkpoints, models and
   * reports under `tenants/` (big bodies go multipart), and sets `DESCENT_BUCKET` on its container. A
   * trainer lists and presigns nothing, and deletes only checkpoints and the active-jobs slot of a job it ends. `s3:ListBucket` (bucket-level, no
   * object listing is done) makes a missing key a 404 instead of a 403, which the store relies on.
   */
  grantTrainerTo(taskRole: IRole, container: ContainerDefinition): void {
    taskRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        resources: [this.bucket.arnForObjects(`${OBJECT_PREFIX}*`)],
      }),
    );
    taskRole.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
    );
    // A trainer deletes only its own superseded checkpoints (and all of them once the job succeeded),
    // and the active-jobs slot of a job it ends.
    taskRole.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:DeleteObject'],
        resources: [
          this.bucket.arnForObjects(CHECKPOINT_OBJECTS),
          this.bucket.arnForObjects(ACTIVE_SLOT_OBJECTS),
        ],
      }),
    );
    this.encryptionKey.grant(taskRole, 'kms:Decrypt', 'kms:GenerateDataKey');
    container.addEnvironment(ENV.bucket, this.bucket.bucketName);
    this.acknowledgePrefixGrant(taskRole);
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as CfnElement);
    Validations.of(taskRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${CHECKPOINT_OBJECTS}]`,
      reason:
        'Checkpoint keys hold the tenant and job id, created at run time; the grant stops at checkpoints/ folders.',
    });
    Validations.of(taskRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${ACTIVE_SLOT_OBJECTS}]`,
      reason:
        'Active-job slot keys hold the tenant, created at run time; the grant stops at active-slots/ folders.',
    });
  }

  private acknowledgePrefixGrant(role: IRole): void {
    const bucketId = Stack.of(this).getLogicalId(this.bucket.node.defaultChild as CfnElement);
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${OBJECT_PREFIX}*]`,
      reason: `Job and dataset keys are created at run time under ${OBJECT_PREFIX}; the grant stops at that prefix.`,
    });
  }
}
