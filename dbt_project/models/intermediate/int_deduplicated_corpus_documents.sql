-- The corpus candidates after exact and near-duplicate removal: the exact survivors
-- (int_exact_deduplicated_corpus_documents) less every near-duplicate that the near_dedup stage
-- (forge.text.dedup, MinHash LSH) clustered under another kept document.
with exact_survivors as (
    select * from {{ ref('int_exact_deduplicated_corpus_documents') }}
),

near_duplicates as (
    select doc_id from {{ ref('stg_forge__near_duplicate_clusters') }}
    where not is_kept
),

final as (
    select exact_survivors.*
    from exact_survivors
    anti join near_duplicates using (doc_id)
)

select * from final
