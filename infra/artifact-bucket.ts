import type { Duration } from 'aws-cdk-lib';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import { Bucket, type BucketProps, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
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
 * Who may touch what is declared per function (`core/api/grants.ts`, applied by `infra/grants.ts`).
 */
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
}
