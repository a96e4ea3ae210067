-- No held-out (validation) text is in any training set: a row returned here is a leak.
-- 1. a validation corpus document whose split key (its trajectory) is a train SFT example;
-- 2. a validation SFT example whose trajectory's document is in the train corpus;
-- 3. a validation corpus document whose exact text is also a train corpus document.
with corpus as (
    select * from {{ ref('fct_corpus_documents') }}
),

sft as (
    select * from {{ ref('fct_sft_examples') }}
),

heldout_doc_in_sft_train as (
    select corpus.doc_id, 'heldout_document_in_sft_train' as leak
    from corpus
    join sft on corpus.split_key = sft.split_key
    where corpus.split = 'validation' and sft.split = 'train'
),

heldout_sft_in_corpus_train as (
    select corpus.doc_id, 'heldout_sft_example_in_corpus_train' as leak
    from corpus
    join sft on corpus.split_key = sft.split_key
    where corpus.split = 'train' and sft.split = 'validation'
),

heldout_text_in_corpus_train as (
    select heldout.doc_id, 'heldout_text_in_corpus_train' as leak
    from corpus as heldout
    join corpus as trained on heldout.text = trained.text
    where heldout.split = 'validation' and trained.split = 'train'
),

final as (
    select * from heldout_doc_in_sft_train
    union all
    select * from heldout_sft_in_corpus_train
    union all
    select * from heldout_text_in_corpus_train
)

select * from final
