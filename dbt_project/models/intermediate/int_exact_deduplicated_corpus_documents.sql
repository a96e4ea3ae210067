-- Exact deduplication on the text's sha256, after the license filter: the first document (seed
-- first, then by doc_id) is kept; every other copy is listed in int_duplicate_corpus_documents
-- with the kept doc_id. The near_dedup stage reads this view (the candidates of near-duplicate
-- removal); int_deduplicated_corpus_documents removes what it found.
with candidates as (
    select * from {{ ref('int_unioned_corpus_candidates') }}
),

ranked as (
    select
        *,
        row_number() over (partition by sha256 order by is_seed desc, doc_id) as copy_rank,
        first_value(doc_id) over (partition by sha256 order by is_seed desc, doc_id) as kept_doc_id
    from candidates
    where {{ license_allowed('license') }}
),

final as (
    select * exclude (copy_rank, kept_doc_id) from ranked where copy_rank = 1
)

select * from final
