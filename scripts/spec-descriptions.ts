/**
 * What each field of the job spec and the sweep request means, for the generated tables of
 * docs/job-spec.md and docs/sweeps.md (scripts/spec-tables.ts). A field whose zod schema carries a
 * description (`.describe()` / `.meta()`) takes that one, and must not be listed here too.
 *
 * Keys are field paths: `training.epochs`; `[]` for an array's items; `<column>`, `<class>`, `<path>`
 * for a map's keys; `{type}` for one variant of a union told apart by `type`
 * (`training.optimizer{adam}.beta1`), and `{*}` for a field that means the same in every variant
 * (`model.layers[]{*}.activation`). A field of the schema with no description here, or a key here that
 * names no field, fails the docs test: describe a new field when adding it.
 */

export const JOB_SPEC_DESCRIPTIONS: Record<string, string> = {
  name: 'A label for people; derived from the task and the job id when absent (`classification-1a2b3c`).',
  task: 'What the label is: classes to tell apart, or a number to predict.',
  dataset: 'The data to train on.',
  'dataset.id':
    'A dataset id returned by `POST /datasets` (CSV or JSON Lines), uploaded before the job is submitted.',
  'dataset.label': 'The column to predict.',
  'dataset.features':
    'Input columns, in order; default: every column but the label, the `exclude`d ones and those that look like identifiers (a text column with a different value in (nearly) every row, or distinct whole numbers in a column named like `id`, `customer_id`, `PassengerId`), which are left out with a warning. A column whose cells are numeric arrays (images, sequences, token ids, in JSON Lines) is given as `{"name": "pixels", "shape": [28, 28, 1]}` and must then be the only feature. A column may not repeat, nor be the label.',
  'dataset.exclude':
    'Columns to leave out of the default features (identifiers, leaks, free text). Not with `features`; the label cannot be excluded.',
  model: 'The network: hidden layers, or a base model to fine-tune.',
  'model.layers':
    'Hidden layers, in order. The output layer is derived from the task (softmax over the classes found, one sigmoid unit for `binaryCrossentropy`, or one linear unit), with a `flatten` before it when needed. Not with `baseModel`.',
  'model.layers[]{*}.activation': 'Activation function.',
  'model.layers[]{*}.kernelInitializer': 'Initial weights (seeded); default `glorotUniform`.',
  'model.layers[]{*}.biasInitializer': 'Initial biases (seeded); default `zeros`.',
  'model.layers[]{*}.kernelRegularizer':
    'L1 and/or L2 penalty on the weights, added to the loss (give either or both).',
  'model.layers[]{*}.biasRegularizer':
    'L1 and/or L2 penalty on the biases, added to the loss (give either or both).',
  'model.layers[]{*}.useBias': 'Whether the layer has a bias.',
  'model.layers[]{*}.strides': 'Step between windows.',
  'model.layers[]{maxPooling1d}.strides': 'Step between windows; default: the pool size.',
  'model.layers[]{averagePooling1d}.strides': 'Step between windows; default: the pool size.',
  'model.layers[]{maxPooling2d}.strides': 'Step between windows; default: the pool size.',
  'model.layers[]{averagePooling2d}.strides': 'Step between windows; default: the pool size.',
  'model.layers[]{*}.padding':
    '`valid`: windows inside the input only; `same`: pad the edges, so the output size is the input size ÷ stride, rounded up.',
  'model.layers[]{*}.poolSize': 'Window size.',
  'model.layers[]{*}.filters': 'Number of filters (output channels).',
  'model.layers[]{*}.kernelSize': 'Window size (a pair for height and width in 2D).',
  'model.layers[]{*}.dilationRate': 'Spacing between the window’s taps; above 1 only with strides of 1.',
  'model.layers[]{dense}': 'Fully connected layer.',
  'model.layers[]{dense}.units': 'Output size.',
  'model.layers[]{dropout}': 'Sets a random share of its inputs to zero while training (seeded).',
  'model.layers[]{dropout}.rate': 'Share of the inputs dropped.',
  'model.layers[]{batchNormalization}':
    'Normalizes its inputs with batch statistics (moving averages at inference).',
  'model.layers[]{batchNormalization}.momentum': 'Momentum of the moving mean and variance.',
  'model.layers[]{batchNormalization}.epsilon': 'Added to the variance to avoid dividing by zero.',
  'model.layers[]{conv1d}': '1D convolution over sequences.',
  'model.layers[]{conv2d}': '2D convolution over images.',
  'model.layers[]{maxPooling1d}': 'Maximum over windows of a sequence.',
  'model.layers[]{averagePooling1d}': 'Mean over windows of a sequence.',
  'model.layers[]{maxPooling2d}': 'Maximum over windows of an image.',
  'model.layers[]{averagePooling2d}': 'Mean over windows of an image.',
  'model.layers[]{flatten}': 'Flattens its input to one dimension.',
  'model.layers[]{reshape}': 'Reshapes its input (the batch dimension excluded).',
  'model.layers[]{reshape}.targetShape': 'The new shape: positive sizes, at most one `-1` (inferred).',
  'model.layers[]{lstm}': 'Long short-term memory recurrent layer over a sequence.',
  'model.layers[]{gru}': 'Gated recurrent unit layer over a sequence.',
  'model.layers[]{*}.units': 'Output size.',
  'model.layers[]{*}.recurrentActivation': 'Activation of the gates.',
  'model.layers[]{*}.returnSequences':
    'Output every time step (to stack another recurrent layer) instead of the last one.',
  'model.layers[]{*}.dropout': 'Dropout rate on the inputs, while training.',
  'model.layers[]{*}.recurrentInitializer': 'Initial recurrent weights (seeded); default `orthogonal`.',
  'model.layers[]{*}.recurrentRegularizer': 'L1 and/or L2 penalty on the recurrent weights.',
  'model.layers[]{embedding}':
    'Learns a vector per integer id (token ids in a sequence); the first layer (after reshape or flatten only).',
  'model.layers[]{embedding}.inputDim': 'Vocabulary size: inputs are integer ids from 0 to `inputDim` − 1.',
  'model.layers[]{embedding}.outputDim': 'Length of each vector.',
  'model.layers[]{embedding}.embeddingsInitializer': 'Initial vectors (seeded); default `randomUniform`.',
  'model.layers[]{embedding}.embeddingsRegularizer': 'L1 and/or L2 penalty on the vectors.',
  'model.outputActivation': 'Overrides the derived output layer’s activation.',
  'model.baseModel':
    'Fine-tuning: start from an earlier SUCCEEDED job’s model of this tenant, or from a dataset created with format `tfjs-model` (its `uploadUrls` take `model.json` and `weights.bin`). The record’s `lineage.baseModel` keeps where it came from.',
  'model.freeze':
    'Fine-tuning: keep the first N layers of the model, or the named ones, fixed. Only with `baseModel`.',
  'model.replaceHead':
    'Fine-tuning: swap the base model’s output layer for one that fits this task (default `true`). Only with `baseModel`.',
  preprocessing:
    'How columns become numbers. Fitted on the training rows only, and saved as `preprocessing.json` and in `model.json`.',
  'preprocessing.scale':
    'Numeric columns: leave, standardize (mean 0, standard deviation 1) or scale to [0, 1].',
  'preprocessing.categorical':
    'Text columns: one input per category, or the category’s index (1-based; 0 = a category not seen in training).',
  'preprocessing.missing':
    'Empty cells: `error` (the job fails naming row and column), `drop` the row, fill with the `mean` or the `mostFrequent` value.',
  'preprocessing.columns': 'Per-column overrides of the settings above.',
  'preprocessing.columns.<column>.scale': 'This column’s `scale`.',
  'preprocessing.columns.<column>.categorical': 'This column’s `categorical` encoding.',
  'preprocessing.columns.<column>.missing':
    'This column’s `missing` rule (for the label: `drop` drops unlabelled rows).',
  'preprocessing.columns.<column>.type':
    '`categorical`: numeric codes as categories, or keep a column detected as an identifier; `numeric`: insist on numbers; `date`: ISO-8601 dates (detected anyway when most values are dates), which become four inputs: days since 1970-01-01, year, month (1–12) and day of the week (0 = Sunday), standardized unless `scale` says otherwise. Any type keeps a column detected as an identifier.',
  'preprocessing.columns.<column>.range':
    'Numeric columns: `[min, max]` known without the data. Scaling uses it instead of statistics of the training rows (`minMax` maps it onto [0, 1], `standardize` onto [−1, 1]) and values outside are clipped into it. With `training.privacy`, keeps the rows out of the published scaling ([privacy](privacy.md)).',
  'preprocessing.columns.<column>.categories':
    'Categorical columns: the fixed vocabulary, in encoding order, instead of the values seen in the training rows; a value outside it is encoded as unseen. With `training.privacy`, keeps the rows out of the published vocabulary.',
  resources: 'Limits of the run.',
  'resources.maxRuntimeSeconds':
    'Training longer than this fails with `TIMEOUT` after a last checkpoint. Default and ceiling: the deployment’s (24 hours and 7 days unless changed).',
  training: 'How to train.',
  'training.optimizer': 'The optimizer and its parameters.',
  'training.optimizer{*}.learningRate': 'Step size.',
  'training.optimizer{*}.epsilon': 'Added to denominators for numerical stability.',
  'training.optimizer{*}.beta1': 'Decay of the first-moment (mean) estimate.',
  'training.optimizer{*}.beta2': 'Decay of the second-moment estimate.',
  'training.optimizer{*}.rho': 'Decay of the moving average of squared gradients.',
  'training.optimizer{gd}':
    'Plain gradient descent (the article’s; with `batchSize: "full"`, exact full-batch descent).',
  'training.optimizer{sgd}': 'Stochastic gradient descent (the same update on mini-batches).',
  'training.optimizer{momentum}': 'Gradient descent with momentum.',
  'training.optimizer{momentum}.momentum': 'Share of the previous step kept.',
  'training.optimizer{momentum}.useNesterov': 'Nesterov’s look-ahead momentum.',
  'training.optimizer{adam}': 'Adam.',
  'training.optimizer{adamax}': 'Adamax (Adam with the infinity norm).',
  'training.optimizer{rmsprop}': 'RMSProp.',
  'training.optimizer{rmsprop}.momentum': 'Momentum.',
  'training.optimizer{rmsprop}.centered': 'Normalize by the centred variance of the gradients.',
  'training.optimizer{adagrad}': 'Adagrad.',
  'training.optimizer{adagrad}.initialAccumulatorValue': 'Starting value of the squared-gradient sums.',
  'training.optimizer{adadelta}': 'Adadelta.',
  'training.epochs': 'Most passes over the training rows (a stopping rule may end the run sooner).',
  'training.batchSize':
    'Rows per gradient step, or `"full"`: the whole training set (exact full-batch gradient descent).',
  'training.validation': 'How rows are held out to measure generalisation.',
  'training.validation{holdout}': 'One seeded split, stratified by class for classification.',
  'training.validation{holdout}.fraction': 'Share of the rows held out for validation.',
  'training.validation{kfold}':
    'k-fold cross-validation: each fold is validated on once by a model trained on the others; the delivered model is retrained on all rows.',
  'training.validation{kfold}.k': 'Number of folds.',
  'training.validation{none}': 'No validation set: train on every row.',
  'training.testFraction':
    'A share of the rows set aside before anything else, never trained or validated on, and reported apart as `report.test`.',
  'training.loss':
    'Default from the task: `categoricalCrossentropy` (classification), `meanSquaredError` (regression). `binaryCrossentropy` needs exactly two classes and gives one sigmoid output unit.',
  'training.classWeights':
    'Per-class loss weights for imbalanced labels: `"balanced"` (n / (k · count of the class), over the training rows) or `{"<class>": weight}` (unnamed classes weigh 1).',
  'training.learningRateSchedule': 'How the learning rate changes from epoch to epoch; constant when absent.',
  'training.learningRateSchedule{step}': 'lr · gamma^floor((epoch − 1) / stepSize).',
  'training.learningRateSchedule{step}.stepSize': 'Epochs between two reductions.',
  'training.learningRateSchedule{*}.gamma': 'Factor per step (or per epoch).',
  'training.learningRateSchedule{exponential}': 'lr · gamma^(epoch − 1).',
  'training.learningRateSchedule{cosine}':
    'From lr down to `minLearningRate` along half a cosine over the run (or `periodEpochs`).',
  'training.learningRateSchedule{cosine}.periodEpochs':
    'Epochs of the half cosine (default: `training.epochs`); the rate then stays at its minimum.',
  'training.learningRateSchedule{*}.minLearningRate': 'The lowest rate.',
  'training.learningRateSchedule{reduceOnPlateau}':
    'Multiply the rate by `factor` when `monitor` has not improved by more than `minDelta` for `patience` epochs.',
  'training.learningRateSchedule{reduceOnPlateau}.monitor': 'The per-epoch metric watched.',
  'training.learningRateSchedule{reduceOnPlateau}.factor': 'Factor applied at each reduction.',
  'training.learningRateSchedule{reduceOnPlateau}.patience': 'Epochs without improvement before a reduction.',
  'training.learningRateSchedule{reduceOnPlateau}.minDelta': 'Smallest change that counts as an improvement.',
  'training.gradientClipping':
    'Rescale gradients whose global norm exceeds `clipNorm`, or clip each value to ±`clipValue` (give exactly one).',
  'training.lossThreshold':
    'Stop as soon as the epoch’s training loss is below this number, or a named metric crosses `value` (`mode` default: `above` for accuracies, `below` otherwise).',
  'training.earlyStopping':
    'Stop when `monitor` has not improved by more than `minDelta` for `patience` epochs; off when absent.',
  'training.earlyStopping.monitor': 'The per-epoch metric watched.',
  'training.earlyStopping.patience': 'Epochs without improvement before stopping.',
  'training.earlyStopping.minDelta': 'Smallest change that counts as an improvement.',
  'training.earlyStopping.restoreBestWeights': 'Deliver the weights of the best epoch rather than the last.',
  'training.checkpoint':
    'How often the worker saves a checkpoint that a redelivered job resumes from (whichever comes first; also on stop, cancel and timeout).',
  'training.checkpoint.everyEpochs': 'Every this many epochs.',
  'training.checkpoint.everySeconds':
    'At the end of the first epoch this many seconds after the last checkpoint.',
  'training.seed':
    'Seeds weight initialisation, the splits, shuffling and dropout; chosen and recorded when absent. (Private training draws its sampling and noise from a secret key instead.)',
  'training.privacy':
    'Differentially private training (DP-SGD): give `targetEpsilon`, `noiseMultiplier` or both. Each step takes a Poisson sample of the rows (rate q = batchSize / training rows), clips each row’s gradient to `clipNorm`, adds Gaussian noise and divides by the expected batch size; the report’s `privacy` section gives the (ε, δ) spent. Not with `batchNormalization` layers nor `gradientClipping`. See [privacy](privacy.md).',
  'training.privacy.targetEpsilon':
    'The ε the whole run may spend at `delta`. Alone: the noise multiplier is the least (to 1e-4) that keeps every planned epoch within it. With `noiseMultiplier`: training stops (`stoppedBy: privacyBudget`) before the epoch that would exceed it.',
  'training.privacy.noiseMultiplier':
    'σ: the noise’s standard deviation divided by `clipNorm`. Default: found from `targetEpsilon`.',
  'training.privacy.delta':
    'δ of the (ε, δ) guarantee; keep it well below 1 / training rows. Default: 1e-5, or 1 / (10 × training rows) when that is smaller.',
  'training.privacy.clipNorm':
    'C: each row’s gradient (all weights together) is scaled down to at most this L2 norm.',
};

export const SWEEP_DESCRIPTIONS: Record<string, string> = {
  name: 'A label; trial _n_’s job is named `<name>-<n>`. Default: the spec’s name, else `<task>-sweep`.',
  spec: 'The job spec every trial starts from. Its `training.seed` is chosen once when absent, so every trial starts from the same initial weights and split. Its validation must be `holdout` or `kfold`.',
  parameters:
    'What to vary (1 to 20 parameters): a path in the spec (`training.optimizer.learningRate`, `model.layers[0].units`) → its domain. The path must exist in the spec (only its last key may be new), and two parameters may not overlap.',
  'parameters.<path>{choice}': 'Exactly these values.',
  'parameters.<path>{choice}.values':
    'Any JSON values (numbers, strings, booleans, objects such as a whole optimizer), none repeated.',
  'parameters.<path>{uniform}':
    'A real number drawn evenly from [`min`, `max`] (rounded to 6 significant digits).',
  'parameters.<path>{logUniform}':
    'A positive real number whose logarithm is drawn evenly: as many draws per decade (learning rates).',
  'parameters.<path>{intUniform}':
    'An integer drawn evenly from `min` to `max`, both included (layer sizes).',
  'parameters.<path>{*}.min': 'Lower bound (included).',
  'parameters.<path>{*}.max': 'Upper bound (included); above `min`.',
  strategy:
    '`grid`: every combination of the choices (choice domains only), the first parameter varying slowest; `random`: `maxTrials` draws, reproducible from `seed`. Default: `grid` when every domain is a choice, else `random`.',
  seed: 'Seeds the random draws; chosen and recorded when absent.',
  objective: 'What ranks the trials. Default: `accuracy` (classification) or `rmse` (regression).',
  'objective.metric':
    'A validation metric: classification `accuracy`, `macroF1`, `weightedF1`, `logLoss`, `rocAuc`, `loss`; regression `mae`, `mse`, `rmse`, `r2`, `loss` (`loss`: the validation loss).',
  'objective.goal':
    'Default by metric: `maximize` for `accuracy`, `macroF1`, `weightedF1`, `rocAuc` and `r2`, else `minimize`.',
  maxTrials:
    'Random: how many trials (default 10). Grid: an upper bound on the number of combinations (default 200).',
  maxParallel:
    'Most trials queued or running at once (default 4, or fewer when there are fewer trials; at most the account’s active-jobs quota).',
  earlyStopping: 'The median stopping rule; off when absent. Not with `kfold` validation.',
  'earlyStopping.type': 'The rule: `median`.',
  'earlyStopping.minEpochs': 'Epochs a trial runs before it may be stopped.',
  'earlyStopping.minTrials': 'Trials that must have completed before any is stopped.',
  'earlyStopping.metric':
    'The per-epoch metric compared. Default: `valAccuracy` when the objective is classification `accuracy`, `valMae` when it is `mae`, else `valLoss`.',
};
