-- The copies that exact deduplication removed, each with the doc_id it duplicates.
with candidates as (
    select * from {{ ref('int_unioned_corpus_candidates') }}
),

ranked as (
    select
        doc_id,
        category,
        source_uri,
        row_number() over (partition by sha256 order by is_seed desc, doc_id) as copy_rank,
        first_value(doc_id) over (partition by sha256 order by is_seed desc, doc_id) as kept_doc_id
    from candidates
),

final as (
    select doc_id, category, source_uri, kept_doc_id as duplicate_of_doc_id
    from ranked
    where copy_rank > 1
)

select * from final
