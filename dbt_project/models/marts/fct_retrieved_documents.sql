-- One row per general document the seed classifier retrieved (score >= the threshold chosen on the
-- labelled sample's precision-recall curve): its score, where it came from, and whether it reached
-- the corpus as the category 'retrieved' (it may have been removed as a duplicate or a contamination).
with scores as (
    select * from {{ ref('stg_forge__retrieval_scores') }}
    where is_retrieved
),

candidates as (
    select doc_id, source_table, category, subcategory, source_uri, n_chars, license
    from {{ ref('int_unioned_corpus_candidates') }}
    where source_table in ('code_documents', 'text_documents')
),

corpus as (
    select doc_id, split from {{ ref('fct_corpus_documents') }}
    where category = 'retrieved'
),

final as (
    select
        scores.doc_id,
        scores.source_table,
        candidates.category as general_category,
        candidates.subcategory,
        candidates.source_uri,
        candidates.n_chars,
        candidates.license,
        scores.retrieval_score,
        scores.fold,
        corpus.doc_id is not null as is_in_corpus,
        corpus.split
    from scores
    left join candidates
        on scores.doc_id = candidates.doc_id and scores.source_table = candidates.source_table
    left join corpus on scores.doc_id = corpus.doc_id
)

select * from final
